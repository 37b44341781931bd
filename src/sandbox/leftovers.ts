/**
 * Leftovers of runs that died without tearing down (SIGKILL, OOM, a lost terminal):
 * the names sandboxes use, which carry their creator's pid, and the sweep that
 * removes what belongs to a pid that no longer runs.
 */
import { existsSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCommand } from './commands.js';
import {
  errorText,
  findCgroup2Mount,
  isPlainDir,
  listNames,
  mountPointsUnder,
  readFileSafe,
  rmdirCgroup,
  unmountOrDetach,
} from './fs.js';

export type LeftoverKind = 'netns' | 'cgroup' | 'tmpdir';

/**
 * Every name a tpctl sandbox uses, each capturing the pid of the process that made
 * it: that pid is what tells a leftover (its creator is gone) from a sandbox in use.
 * Keep this list in step with the helpers that create sandboxes.
 */
const SANDBOX_NAME_PATTERNS: readonly RegExp[] = [
  // createSandbox(): tpe2e-<tag>-<pid> (tests), tpdemo-<pid>, tpbench-<pid>
  /^(?:tpe2e-[a-z0-9-]+|tpdemo|tpbench)-([1-9]\d*)$/,
  // test/ebpf/sandbox.ts: tpt-ebpf-<tag>-<pid>-<n>
  /^tpt-ebpf-[a-z0-9]+-([1-9]\d*)-\d+$/,
  // test/iptables/run-in-netns.ts: tpt-ipt-<pid>-<n>
  /^tpt-ipt-([1-9]\d*)-\d+$/,
  // test/commands: tpt-cmd-<pid>
  /^tpt-cmd-([1-9]\d*)$/,
  // scratch directories of tests: tpt-<area>-<what>-<pid>
  /^tpt-[a-z]+-[a-z]+-([1-9]\d*)$/,
];

/** Network namespaces carry the sandbox name plus a host suffix (-c, -m; -o for a test's second namespace). */
const NETNS_SUFFIX = /-[cmo]$/;
/** mkdtemp appends six random characters. */
const MKDTEMP_SUFFIX = /-[A-Za-z0-9]{6}$/;

/** The sandbox name and creator pid behind a netns, cgroup or temp-dir name; undefined when it is not ours. */
export function parseSandboxName(name: string, kind: LeftoverKind): { base: string; pid: number } | undefined {
  let candidates: string[];
  if (kind === 'tmpdir') {
    if (!MKDTEMP_SUFFIX.test(name)) return undefined;
    candidates = [name.replace(MKDTEMP_SUFFIX, '')];
  } else if (kind === 'netns') {
    candidates = NETNS_SUFFIX.test(name) ? [name, name.replace(NETNS_SUFFIX, '')] : [name];
  } else {
    candidates = [name];
  }
  for (const base of candidates) {
    for (const pattern of SANDBOX_NAME_PATTERNS) {
      const m = pattern.exec(base);
      if (m?.[1]) return { base, pid: Number(m[1]) };
    }
  }
  return undefined;
}

function pidAlive(pid: number): boolean {
  return existsSync(`/proc/${pid}`);
}

export interface SweepReport {
  /** What was removed, one entry per item (`netns X`, `cgroup /path`, `umount /path`, `dir /path`, `kill pid (in …)`). */
  removed: string[];
  /** What could not be removed, and why; the sweep never throws for these. */
  problems: string[];
}

/**
 * Removes what sandboxes of dead processes left behind: processes still in their
 * cgroups or network namespaces, bpffs mounts in their temp dirs, the namespaces,
 * the cgroups and the temp dirs. Only names matching our patterns whose embedded pid
 * is not a running process are touched; a sandbox whose creator lives (or whose pid
 * was reused) is left alone. Needs root.
 */
export async function sweepStaleSandboxes(): Promise<SweepReport> {
  const report: SweepReport = { removed: [], problems: [] };
  const isStale = (name: string, kind: LeftoverKind): boolean => {
    const parsed = parseSandboxName(name, kind);
    return parsed !== undefined && !pidAlive(parsed.pid);
  };

  const netns = listNames('/run/netns').filter((n) => isStale(n, 'netns'));
  let cgroupRoot: string | undefined;
  try {
    cgroupRoot = findCgroup2Mount();
  } catch {
    cgroupRoot = undefined;
  }
  const cgroups = cgroupRoot
    ? listNames(cgroupRoot)
        .filter((n) => isStale(n, 'cgroup'))
        .map((n) => join(cgroupRoot as string, n))
        .filter(isPlainDir)
    : [];
  const tmpRoot = tmpdir();
  const tmpDirs = listNames(tmpRoot)
    .filter((n) => isStale(n, 'tmpdir'))
    .map((n) => join(tmpRoot, n))
    .filter(isPlainDir);

  await killLeftoverProcesses(netns, cgroups, report);
  for (const dir of tmpDirs) await unmountBpffsUnder(dir, report);
  for (const ns of netns) {
    const r = await runCommand(['ip', 'netns', 'del', ns]);
    if (r.exitCode === 0) report.removed.push(`netns ${ns}`);
    else if (existsSync(`/run/netns/${ns}`)) report.problems.push(`ip netns del ${ns}: ${r.stderr.trim()}`);
  }
  for (const cg of cgroups) await removeCgroup(cg, report);
  for (const dir of tmpDirs) {
    const mounted = mountPointsUnder(dir);
    if (mounted.length > 0) {
      report.problems.push(`${dir} kept: still mounted at ${mounted.join(', ')}`);
      continue;
    }
    try {
      rmSync(dir, { recursive: true, force: true });
      report.removed.push(`dir ${dir}`);
    } catch (e) {
      report.problems.push(`rm ${dir}: ${errorText(e)}`);
    }
  }
  return report;
}

/** Identity of a network namespace file (`/proc/PID/ns/net` or a bind mount in /run/netns). */
function netnsInode(path: string): number | undefined {
  try {
    return statSync(path).ino;
  } catch {
    return undefined;
  }
}

/**
 * Processes left in stale cgroups or stale network namespaces were started by the
 * dead run (nothing else enters them), so they are killed, by pid. A namespace that
 * turns out to be the root one (or this process's) is never a reason to kill.
 */
async function killLeftoverProcesses(netns: string[], cgroups: string[], report: SweepReport): Promise<void> {
  const victims = new Map<number, string>();
  for (const cg of cgroups) {
    for (const pid of cgroupPids(cg)) victims.set(pid, `cgroup ${cg}`);
  }
  const protectedNs = new Set([netnsInode('/proc/1/ns/net'), netnsInode('/proc/self/ns/net')]);
  const staleNs = new Map<number, string>();
  for (const ns of netns) {
    const ino = netnsInode(`/run/netns/${ns}`);
    if (ino !== undefined && !protectedNs.has(ino)) staleNs.set(ino, ns);
  }
  if (staleNs.size > 0) {
    for (const entry of listNames('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      const ns = staleNs.get(netnsInode(`/proc/${entry}/ns/net`) ?? -1);
      if (ns) victims.set(Number(entry), `netns ${ns}`);
    }
  }
  victims.delete(process.pid);
  victims.delete(1);
  for (const [pid, where] of victims) {
    try {
      process.kill(pid, 'SIGKILL');
      report.removed.push(`kill ${pid} (in ${where})`);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ESRCH') report.problems.push(`kill ${pid} (in ${where}): ${errorText(e)}`);
    }
  }
}

/** Pids in a cgroup and its descendants. */
function cgroupPids(cg: string): number[] {
  const pids = readFileSafe(join(cg, 'cgroup.procs'))
    .split('\n')
    .filter((l) => /^\d+$/.test(l))
    .map(Number);
  for (const entry of listNames(cg)) {
    const child = join(cg, entry);
    if (isPlainDir(child)) pids.push(...cgroupPids(child));
  }
  return pids;
}

/**
 * Unmounting a bpffs drops its pins, and with them the links that kept the dead
 * run's programs attached. Mounts may be stacked on one point, hence the rounds.
 */
async function unmountBpffsUnder(dir: string, report: SweepReport): Promise<void> {
  for (let round = 0; round < 8; round++) {
    const mounts = mountPointsUnder(dir, 'bpf');
    if (mounts.length === 0) return;
    for (const mnt of mounts) {
      const r = await unmountOrDetach(mnt);
      if (r.problem) {
        report.problems.push(r.problem);
        return;
      }
      if (r.how) report.removed.push(`${r.how} ${mnt}`);
    }
  }
}

/** Children first. */
async function removeCgroup(cg: string, report: SweepReport): Promise<void> {
  for (const entry of listNames(cg)) {
    const child = join(cg, entry);
    if (isPlainDir(child)) await removeCgroup(child, report);
  }
  const r = await rmdirCgroup(cg);
  if (r.problem) report.problems.push(r.problem);
  if (r.removed) report.removed.push(`cgroup ${cg}`);
}

/** The report as lines for a log: one summary line when something was removed, one line per problem. */
export function describeSweep(report: SweepReport): string[] {
  const lines: string[] = [];
  if (report.removed.length > 0) lines.push(`removed leftovers of dead sandbox runs: ${report.removed.join('; ')}`);
  for (const p of report.problems) lines.push(`could not remove a sandbox leftover: ${p}`);
  return lines;
}
