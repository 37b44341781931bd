/**
 * A throw-away two-host network for end-to-end tests and the demo:
 *
 *   netns <name>-c ("client host")  ──veth──  netns <name>-m ("mesh host")
 *   10.231.N.1/24, fd00:231:N::1/64           10.231.N.2/24, fd00:231:N::2/64
 *
 * plus a child cgroup v2 directory (only mesh-host processes join it: cgroup hooks
 * are not scoped to a network namespace), a private bpffs mount and a resolv.conf
 * for the mesh host naming the client host as its DNS server.
 *
 * Nothing here touches the root network namespace or the root cgroup. Every
 * command and wait is bounded; destroy() undoes whatever was created, even after a
 * partial creation, and may be called more than once.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { findCgroup2Mount as findCgroup2MountOrNone, mountBpffs, readMounts, unmount } from '../host/mounts.js';
import { scaledMs } from './timeout-scale.js';

export type SandboxHost = 'client' | 'mesh';

export interface SandboxOptions {
  /**
   * Unique prefix of everything created (netns `<name>-c`/`<name>-m`, cgroup `<name>`),
   * e.g. `tpe2e-nft-b-<pid>`: include the pid so parallel runs never share a name
   * (a leftover with the same name can then only be from a dead run, and is removed;
   * sweepStaleSandboxes() finds such leftovers by that pid).
   */
  name: string;
  /** Host numbers of additional client-host addresses (both families), e.g. [3, 4]. */
  extraClientHosts?: number[];
}

export interface Sandbox {
  readonly name: string;
  /** The third octet / group that tells this sandbox's subnet apart. */
  readonly subnet: number;
  readonly netns: Record<SandboxHost, string>;
  readonly iface: Record<SandboxHost, string>;
  readonly ipv4: Record<SandboxHost, string>;
  readonly ipv6: Record<SandboxHost, string>;
  /** Absolute path of the child cgroup v2 directory. */
  readonly cgroupPath: string;
  /** A private bpffs mount point. */
  readonly bpffsPath: string;
  /** resolv.conf of the mesh host (nameservers = the client host's addresses). */
  readonly resolvConfPath: string;
  /** A scratch directory for the caller, removed by destroy(). */
  readonly tmpDir: string;
  /** `10.231.N.<host>` */
  v4(host: number): string;
  /** `fd00:231:N::<host>` */
  v6(host: number): string;
  destroy(): Promise<void>;
}

export interface CommandResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

const COMMAND_TIMEOUT_MS = 15_000;
let subnetCounter = 0;

/** Runs a command on the host (root netns), bounded; never throws on non-zero exit. */
export async function runCommand(
  argv: string[],
  opts: { env?: Record<string, string>; timeoutMs?: number; input?: string } = {},
): Promise<CommandResult> {
  const [file, ...args] = argv;
  if (!file) throw new Error('runCommand: empty argv');
  const r = await execa(file, args, {
    reject: false,
    timeout: opts.timeoutMs ?? scaledMs(COMMAND_TIMEOUT_MS),
    env: opts.env,
    input: opts.input,
    stripFinalNewline: false,
  });
  return {
    exitCode: typeof r.exitCode === 'number' ? r.exitCode : -1,
    stdout: String(r.stdout ?? ''),
    stderr: String(r.stderr ?? (r.failed && !r.exitCode ? r.message : '')),
    timedOut: Boolean(r.timedOut),
  };
}

async function mustRun(argv: string[], input?: string): Promise<string> {
  const r = await runCommand(argv, { input });
  if (r.exitCode !== 0) {
    throw new Error(`${argv.join(' ')}: ${r.stderr.trim() || `exit ${r.exitCode}${r.timedOut ? ' (timed out)' : ''}`}`);
  }
  return r.stdout;
}

/** Runs a command inside one host of the sandbox (as root, not in the cgroup). */
export function runIn(
  sandbox: Pick<Sandbox, 'netns'>,
  host: SandboxHost,
  argv: string[],
  opts: { env?: Record<string, string>; timeoutMs?: number; input?: string } = {},
): Promise<CommandResult> {
  return runCommand(['nsenter', `--net=/run/netns/${sandbox.netns[host]}`, '--', ...argv], opts);
}

/** The cgroup v2 mount point (src/host/mounts.ts); a sandbox cannot be built without one. */
export function findCgroup2Mount(): string {
  const mountPoint = findCgroup2MountOrNone();
  if (!mountPoint) throw new Error('sandbox: no cgroup2 mount in /proc/self/mountinfo (mount cgroup2 somewhere, e.g. /sys/fs/cgroup/unified)');
  return mountPoint;
}

function isMountPoint(path: string): boolean {
  return readMounts().some((m) => m.mountPoint === path);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A process started inside the sandbox, with its stdout kept line by line. */
export interface SandboxProcess {
  readonly pid: number;
  readonly child: ChildProcess;
  /** Every stdout line so far. */
  readonly lines: string[];
  readonly stderr: () => string;
  /** Resolves with the first stdout line matching `pred` (past or future); rejects on exit or timeout. */
  waitForLine(pred: (line: string) => boolean, timeoutMs: number): Promise<string>;
  /** Resolves with the exit code (null when killed by a signal); rejects after timeoutMs. */
  waitForExit(timeoutMs: number): Promise<number | null>;
  writeLine(text: string): void;
  closeStdin(): void;
  /** SIGTERM, then SIGKILL after a bounded grace period. */
  stop(): Promise<void>;
}

const tracked = new WeakMap<Sandbox, Set<SandboxProcess>>();

export interface SpawnOptions {
  /** Run as this uid/gid (setpriv); root when omitted. */
  uid?: number;
  /** Join the sandbox cgroup before exec (mesh host only). */
  inCgroup?: boolean;
  argv: string[];
  env?: Record<string, string>;
}

/** Starts a process in one host of the sandbox; destroy() stops it. */
export function spawnIn(sandbox: Sandbox, host: SandboxHost, opts: SpawnOptions): SandboxProcess {
  if (opts.inCgroup && host !== 'mesh') {
    throw new Error('spawnIn: only mesh-host processes may join the cgroup (cgroup hooks are not netns-scoped)');
  }
  const inner = ['nsenter', `--net=/run/netns/${sandbox.netns[host]}`, '--'];
  if (opts.uid !== undefined) {
    inner.push('setpriv', `--reuid=${opts.uid}`, `--regid=${opts.uid}`, '--clear-groups', '--');
  }
  inner.push(...opts.argv);
  // The shell writes its own pid into the cgroup and then execs: the final program
  // (and everything it starts) is in the cgroup from its first instruction.
  const script = opts.inCgroup ? 'echo $$ > "$1" && shift && exec "$@"' : 'shift && exec "$@"';
  const cgroupProcs = opts.inCgroup ? join(sandbox.cgroupPath, 'cgroup.procs') : '-';
  const child = spawn('sh', ['-c', script, 'sh', cgroupProcs, ...inner], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, ...opts.env },
  });
  if (child.pid === undefined) throw new Error(`spawnIn: could not start ${opts.argv.join(' ')}`);
  const proc = wrapChild(child);
  let set = tracked.get(sandbox);
  if (!set) tracked.set(sandbox, (set = new Set()));
  set.add(proc);
  child.once('exit', () => set?.delete(proc));
  return proc;
}

function wrapChild(child: ChildProcess): SandboxProcess {
  const lines: string[] = [];
  const lineWaiters = new Set<() => void>();
  let stderrText = '';
  let partial = '';
  let exitCode: number | null | undefined;
  child.stdout?.setEncoding('utf8');
  child.stdout?.on('data', (chunk: string) => {
    partial += chunk;
    let nl: number;
    while ((nl = partial.indexOf('\n')) >= 0) {
      lines.push(partial.slice(0, nl));
      partial = partial.slice(nl + 1);
    }
    for (const w of lineWaiters) w();
  });
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    if (stderrText.length < 64_000) stderrText += chunk;
  });
  child.stdin?.on('error', () => {});
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => {
      exitCode = code;
      for (const w of lineWaiters) w();
      resolve(code);
    });
  });

  const proc: SandboxProcess = {
    pid: child.pid as number,
    child,
    lines,
    stderr: () => stderrText,
    waitForLine(pred, timeoutMs) {
      return new Promise((resolve, reject) => {
        const check = (): boolean => {
          const found = lines.find(pred);
          if (found !== undefined) {
            done();
            resolve(found);
            return true;
          }
          if (exitCode !== undefined) {
            done();
            reject(new Error(`process ${proc.pid} exited (${exitCode}) before the expected output; stderr: ${stderrText.trim().slice(-500)}`));
            return true;
          }
          return false;
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`process ${proc.pid}: no expected output within ${timeoutMs} ms; stdout: ${lines.join(' | ').slice(-500)}; stderr: ${stderrText.trim().slice(-500)}`));
        }, timeoutMs);
        const waiter = (): void => void check();
        const done = (): void => {
          clearTimeout(timer);
          lineWaiters.delete(waiter);
        };
        lineWaiters.add(waiter);
        check();
      });
    },
    waitForExit(timeoutMs) {
      if (exitCode !== undefined) return Promise.resolve(exitCode);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`process ${proc.pid} still running after ${timeoutMs} ms`)), timeoutMs);
        void exited.then((code) => {
          clearTimeout(timer);
          resolve(code);
        });
      });
    },
    writeLine(text) {
      child.stdin?.write(`${text}\n`);
    },
    closeStdin() {
      child.stdin?.end();
    },
    async stop() {
      if (exitCode !== undefined) return;
      try {
        process.kill(proc.pid, 'SIGTERM');
      } catch {
        return;
      }
      try {
        await proc.waitForExit(scaledMs(2_000));
      } catch {
        try {
          process.kill(proc.pid, 'SIGKILL');
        } catch {
          return;
        }
        await proc.waitForExit(scaledMs(2_000)).catch(() => undefined);
      }
    },
  };
  return proc;
}

/** Builds the sandbox. On any failure, what was already created is removed before the error propagates. */
export async function createSandbox(opts: SandboxOptions): Promise<Sandbox> {
  if (!/^[a-z0-9-]{1,40}$/.test(opts.name)) {
    throw new Error(`sandbox name ${JSON.stringify(opts.name)}: use 1-40 characters of [a-z0-9-]`);
  }
  if (parseSandboxName(opts.name, 'cgroup')?.pid !== process.pid) {
    // Otherwise sweepStaleSandboxes() could neither recognise its leftovers nor tell that it is in use.
    throw new Error(`sandbox name ${JSON.stringify(opts.name)}: must be tpe2e-<tag>-<pid>, tpdemo-<pid> or tpbench-<pid> with this process's pid`);
  }
  subnetCounter = (subnetCounter + 1) % 200;
  const subnet = ((process.pid + subnetCounter * 7) % 250) + 1;
  const v4 = (host: number): string => `10.231.${subnet}.${host}`;
  const v6 = (host: number): string => `fd00:231:${subnet}::${host}`;
  const cgroupRoot = findCgroup2Mount();
  const created = {
    netns: [] as string[],
    cgroup: undefined as string | undefined,
    bpffsMounted: false,
    tmpDir: undefined as string | undefined,
  };
  const sandbox: Sandbox = {
    name: opts.name,
    subnet,
    netns: { client: `${opts.name}-c`, mesh: `${opts.name}-m` },
    iface: { client: 'veth-c', mesh: 'veth-m' },
    ipv4: { client: v4(1), mesh: v4(2) },
    ipv6: { client: v6(1), mesh: v6(2) },
    cgroupPath: join(cgroupRoot, opts.name),
    bpffsPath: '',
    resolvConfPath: '',
    tmpDir: '',
    v4,
    v6,
    destroy: async () => {
      await destroySandbox(sandbox, created);
    },
  };
  if (sandbox.cgroupPath === cgroupRoot || !sandbox.cgroupPath.startsWith(`${cgroupRoot}/`)) {
    throw new Error(`sandbox: refusing to use ${sandbox.cgroupPath} (not a child of ${cgroupRoot})`);
  }

  try {
    await removeStaleLeftovers(sandbox);
    for (const ns of [sandbox.netns.client, sandbox.netns.mesh]) {
      await mustRun(['ip', 'netns', 'add', ns]);
      created.netns.push(ns);
    }
    // Both ends are created directly inside their namespaces: nothing ever appears in the root netns.
    await mustRun([
      'ip', 'link', 'add', sandbox.iface.client, 'netns', sandbox.netns.client,
      'type', 'veth', 'peer', 'name', sandbox.iface.mesh, 'netns', sandbox.netns.mesh,
    ]);
    const clientHosts = [1, ...(opts.extraClientHosts ?? [])];
    const batches: Record<SandboxHost, string[]> = {
      client: [
        ...clientHosts.flatMap((h) => [
          `address add ${v4(h)}/24 dev ${sandbox.iface.client}`,
          // Extra IPv6 addresses are deprecated (preferred_lft 0) so source address
          // selection keeps picking ::1, as IPv4 keeps picking its primary .1; they
          // can still be bound explicitly and receive traffic.
          `address add ${v6(h)}/64 dev ${sandbox.iface.client} nodad${h === 1 ? '' : ' preferred_lft 0'}`,
        ]),
      ],
      mesh: [
        `address add ${v4(2)}/24 dev ${sandbox.iface.mesh}`,
        `address add ${v6(2)}/64 dev ${sandbox.iface.mesh} nodad`,
      ],
    };
    for (const host of ['client', 'mesh'] as const) {
      const lines = [...batches[host], `link set lo up`, `link set ${sandbox.iface[host]} up`];
      // Envoy's inbound passthrough binds ::6 (Kuma's IPv6 twin of 127.0.0.6, which lo
      // has anyway); it must be a local address for the proxy to bind it.
      if (host === 'mesh') lines.push('address add ::6/128 dev lo nodad');
      const r = await runIn(sandbox, host, ['ip', '-batch', '-'], { input: `${lines.join('\n')}\n` });
      if (r.exitCode !== 0) throw new Error(`sandbox ${host} addresses: ${r.stderr.trim()}`);
    }

    mkdirSync(sandbox.cgroupPath);
    created.cgroup = sandbox.cgroupPath;

    const tmpDir = mkdtempSync(join(tmpdir(), `${opts.name}-`));
    created.tmpDir = tmpDir;
    const bpffsPath = join(tmpDir, 'bpffs');
    mkdirSync(bpffsPath);
    mountBpffs(bpffsPath);
    created.bpffsMounted = true;
    const resolvConfPath = join(tmpDir, 'resolv.conf');
    writeFileSync(resolvConfPath, `# tpctl sandbox ${opts.name}\nnameserver ${v4(1)}\nnameserver ${v6(1)}\n`);
    Object.assign(sandbox, { bpffsPath, resolvConfPath, tmpDir });

    await waitForLink(sandbox);
    return sandbox;
  } catch (e) {
    await destroySandbox(sandbox, created).catch(() => undefined);
    throw e;
  }
}

/** A previous run that crashed may have left our names behind; they are ours, so remove them. */
async function removeStaleLeftovers(sandbox: Sandbox): Promise<void> {
  for (const ns of [sandbox.netns.client, sandbox.netns.mesh]) {
    if (existsSync(`/run/netns/${ns}`)) await runCommand(['ip', 'netns', 'del', ns]);
  }
  if (existsSync(sandbox.cgroupPath)) {
    try {
      rmdirSync(sandbox.cgroupPath);
    } catch (e) {
      throw new Error(`sandbox: stale cgroup ${sandbox.cgroupPath} cannot be removed (${(e as Error).message}); stop the processes in it`);
    }
  }
}

/** The veth carrier comes up asynchronously; wait (bounded) until both ends report UP. */
async function waitForLink(sandbox: Sandbox): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (Date.now() < deadline) {
    let up = 0;
    for (const host of ['client', 'mesh'] as const) {
      const r = await runIn(sandbox, host, ['ip', '-o', 'link', 'show', 'dev', sandbox.iface[host]]);
      if (/state UP/.test(r.stdout)) up++;
    }
    if (up === 2) return;
    await sleep(50);
  }
  throw new Error(`sandbox ${sandbox.name}: veth link did not come up within 5 s`);
}

async function destroySandbox(
  sandbox: Sandbox,
  created: { netns: string[]; cgroup: string | undefined; bpffsMounted: boolean; tmpDir: string | undefined },
): Promise<void> {
  const problems: string[] = [];
  const procs = [...(tracked.get(sandbox) ?? [])];
  await Promise.all(procs.map((p) => p.stop()));

  for (const ns of created.netns.splice(0)) {
    const r = await runCommand(['ip', 'netns', 'del', ns]);
    if (r.exitCode !== 0 && existsSync(`/run/netns/${ns}`)) problems.push(`ip netns del ${ns}: ${r.stderr.trim()}`);
  }

  if (created.cgroup) {
    const { problem } = await rmdirCgroup(created.cgroup);
    if (problem) problems.push(problem);
    created.cgroup = undefined;
  }

  if (created.bpffsMounted && sandbox.bpffsPath) {
    const r = await unmountOrDetach(sandbox.bpffsPath);
    if (r.problem) problems.push(r.problem);
    created.bpffsMounted = false;
  }

  if (created.tmpDir) {
    if (!(sandbox.bpffsPath && isMountPoint(sandbox.bpffsPath))) {
      rmSync(created.tmpDir, { recursive: true, force: true });
    } else {
      problems.push(`${created.tmpDir} kept: bpffs still mounted`);
    }
    created.tmpDir = undefined;
  }
  if (problems.length > 0) throw new Error(`sandbox ${sandbox.name} teardown: ${problems.join('; ')}`);
}

function readFileSafe(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/**
 * rmdir of a cgroup, retried briefly: processes that were killed or exited leave it
 * asynchronously. `removed` is false when it was already gone.
 */
async function rmdirCgroup(cg: string): Promise<{ removed: boolean; problem?: string }> {
  for (let attempt = 0; ; attempt++) {
    try {
      rmdirSync(cg);
      return { removed: true };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { removed: false };
      if (attempt === 29) {
        const procs = readFileSafe(join(cg, 'cgroup.procs')).trim().replace(/\n/g, ',') || 'none';
        return { removed: false, problem: `rmdir ${cg}: ${errorText(e)} (procs: ${procs})` };
      }
      await sleep(100);
    }
  }
}

/** Unmounts `path`; when it is busy, detaches it lazily (umount -l) so the directory can go. */
async function unmountOrDetach(path: string): Promise<{ how?: 'umount' | 'umount -l'; problem?: string }> {
  try {
    unmount(path);
    return { how: 'umount' };
  } catch (e) {
    if (!isMountPoint(path)) return {};
    const lazy = await runCommand(['umount', '-l', path]);
    if (lazy.exitCode === 0) return { how: 'umount -l' };
    return { problem: `umount ${path}: ${lazy.stderr.trim() || errorText(e)}` };
  }
}

/** Every path under `dir` (relative), depth-first; empty when dir is gone. */
export function listTree(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  const walk = (rel: string): void => {
    for (const entry of readdirSync(join(dir, rel), { withFileTypes: true })) {
      const path = rel ? `${rel}/${entry.name}` : entry.name;
      out.push(entry.isDirectory() ? `${path}/` : path);
      if (entry.isDirectory()) walk(path);
    }
  };
  walk('');
  return out.sort();
}

// ---------------------------------------------------------------------------------
// Leftovers of runs that died without tearing down (SIGKILL, OOM, a lost terminal).

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

function listNames(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** A real directory (not a symlink to one). */
function isPlainDir(path: string): boolean {
  try {
    return lstatSync(path).isDirectory();
  } catch {
    return false;
  }
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
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

/** Mount points at or below dir, deepest first. */
function mountPointsUnder(dir: string, fsType?: string): string[] {
  return readMounts()
    .filter((m) => (m.mountPoint === dir || m.mountPoint.startsWith(`${dir}/`)) && (!fsType || m.fsType === fsType))
    .map((m) => m.mountPoint)
    .sort((a, b) => b.length - a.length);
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
