/**
 * sweepStaleSandboxes(): which names are ours and whose pid they carry (unit), and,
 * on the real host, that a leftover of a dead run — namespaces, cgroup, a bpffs
 * mounted in its temp dir, processes still inside — is removed while a sandbox
 * whose creator is alive and a name that is not ours are left alone.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, rmdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterEach, describe, expect, it } from 'vitest';
import { readMounts } from '../../src/host/mounts.js';
import { createSandbox } from '../../src/sandbox/sandbox.js';
import { findCgroup2Mount } from '../../src/sandbox/fs.js';
import { parseSandboxName, sweepStaleSandboxes, type LeftoverKind } from '../../src/sandbox/leftovers.js';
import { scaledMs } from '../../src/sandbox/timeout-scale.js';

describe('parseSandboxName', () => {
  const cases: Array<[string, LeftoverKind, string, number]> = [
    ['tpe2e-nft-b-4242', 'cgroup', 'tpe2e-nft-b-4242', 4242],
    ['tpe2e-nft-b-4242-c', 'netns', 'tpe2e-nft-b-4242', 4242],
    ['tpe2e-bpf-4-4242-m', 'netns', 'tpe2e-bpf-4-4242', 4242],
    ['tpe2e-self-4242-aB3xY9', 'tmpdir', 'tpe2e-self-4242', 4242],
    ['tpe2e-self-4242-123456', 'tmpdir', 'tpe2e-self-4242', 4242],
    ['tpdemo-77-m', 'netns', 'tpdemo-77', 77],
    ['tpbench-88', 'cgroup', 'tpbench-88', 88],
    ['tpbench-88-Zz0zZ0', 'tmpdir', 'tpbench-88', 88],
    ['tpt-ebpf-life-4242-3', 'netns', 'tpt-ebpf-life-4242-3', 4242],
    ['tpt-ebpf-ns-4242-3-o', 'netns', 'tpt-ebpf-ns-4242-3', 4242],
    ['tpt-ebpf-life-4242-3', 'cgroup', 'tpt-ebpf-life-4242-3', 4242],
    ['tpt-ebpf-life-4242-3-Qw3rty', 'tmpdir', 'tpt-ebpf-life-4242-3', 4242],
    ['tpt-ipt-555-2', 'netns', 'tpt-ipt-555-2', 555],
    ['tpt-cmd-666', 'netns', 'tpt-cmd-666', 666],
    ['tpt-ipt-fw-777-abcdef', 'tmpdir', 'tpt-ipt-fw-777', 777],
    ['tpt-ipt-lock-778-abcdef', 'tmpdir', 'tpt-ipt-lock-778', 778],
    ['tpt-ebpf-loader-779-abcdef', 'tmpdir', 'tpt-ebpf-loader-779', 779],
    ['tpt-ebpf-pre-780-abcdef', 'tmpdir', 'tpt-ebpf-pre-780', 780],
    ['tpt-cmd-bpffs-781-abcdef', 'tmpdir', 'tpt-cmd-bpffs-781', 781],
  ];
  for (const [name, kind, base, pid] of cases) {
    it(`${kind} ${name} → ${base}, pid ${pid}`, () => {
      expect(parseSandboxName(name, kind)).toEqual({ base, pid });
    });
  }

  const notOurs: Array<[string, LeftoverKind]> = [
    ['tpt-ipt-fw-abcdef', 'tmpdir'], // the old scratch name without a pid
    ['tmp.aYRAV7u85G', 'tmpdir'],
    ['tpe2e-report.json', 'tmpdir'],
    ['tpe2e-nft-b-4242', 'tmpdir'], // no mkdtemp suffix: not a directory a sandbox made
    ['tpe2e-nft-b', 'cgroup'],
    ['tpe2e-nft-b-4242-c', 'cgroup'], // host suffixes belong to namespaces only
    ['tpe2e-nft-b-4242-x', 'netns'],
    ['tpdemo-0', 'cgroup'],
    ['tpdemo-', 'netns'],
    ['TPE2E-self-4242', 'cgroup'],
    ['cni-4242', 'netns'],
    ['system.slice', 'cgroup'],
    ['tpt-swp-4242', 'netns'],
    ['xtpt-cmd-4242', 'netns'],
    ['tpt-cmd-4242-extra', 'netns'],
  ];
  for (const [name, kind] of notOurs) {
    it(`${kind} ${name} is not ours`, () => {
      expect(parseSandboxName(name, kind)).toBeUndefined();
    });
  }

  it('createSandbox refuses a name without its own pid (the sweep could not tell it is in use)', async () => {
    await expect(createSandbox({ name: 'tpe2e-nopid' })).rejects.toThrow(/must be tpe2e-<tag>-<pid>/);
    await expect(createSandbox({ name: `tpe2e-x-${process.pid + 1}` })).rejects.toThrow(/with this process's pid/);
  });
});

/** A pid no process can have: above the kernel's pid_max. */
function deadPid(): number {
  return Number(readFileSync('/proc/sys/kernel/pid_max', 'utf8').trim()) + 1;
}

describe('sweepStaleSandboxes (privileged)', () => {
  const netns: string[] = [];
  const cgroups: string[] = [];
  const dirs: string[] = [];
  const children: ChildProcess[] = [];

  afterEach(async () => {
    for (const c of children.splice(0)) {
      if (c.exitCode === null && c.signalCode === null && c.pid) process.kill(c.pid, 'SIGKILL');
    }
    for (const d of dirs.splice(0)) {
      for (const m of readMounts().filter((x) => x.mountPoint.startsWith(`${d}/`)).reverse()) await execa('umount', [m.mountPoint], { reject: false });
      rmSync(d, { recursive: true, force: true });
    }
    for (const ns of netns.splice(0)) await execa('ip', ['netns', 'del', ns], { reject: false });
    for (const cg of cgroups.splice(0)) {
      for (let i = 0; i < 30 && existsSync(cg); i++) {
        try {
          rmdirSync(cg);
        } catch {
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    }
  });

  async function addNetns(name: string): Promise<string> {
    await execa('ip', ['netns', 'add', name], { timeout: scaledMs(10_000) });
    netns.push(name);
    return `/run/netns/${name}`;
  }

  function addCgroup(name: string): string {
    const cg = join(findCgroup2Mount(), name);
    mkdirSync(cg);
    cgroups.push(cg);
    return cg;
  }

  function addTmpDir(base: string): string {
    const d = mkdtempSync(join(tmpdir(), `${base}-`));
    dirs.push(d);
    return d;
  }

  /** A sleeping process we start, placed in a cgroup or a namespace; resolves once it is there. */
  async function sleeper(where: { cgroup?: string; netns?: string }): Promise<ChildProcess> {
    const script = where.cgroup ? `echo $$ > ${where.cgroup}/cgroup.procs && exec sleep 30` : 'exec sleep 30';
    const argv = where.netns ? ['nsenter', `--net=${where.netns}`, 'sh', '-c', script] : ['sh', '-c', script];
    const c = spawn(argv[0]!, argv.slice(1), { stdio: 'ignore' });
    children.push(c);
    for (let i = 0; i < 50; i++) {
      const placed = where.cgroup
        ? readFileSync(join(where.cgroup, 'cgroup.procs'), 'utf8').split('\n').includes(String(c.pid))
        : existsSync(`/proc/${c.pid}/cmdline`) && readFileSync(`/proc/${c.pid}/cmdline`, 'utf8').startsWith('sleep');
      if (placed) return c;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`sleeper ${c.pid} did not start`);
  }

  function exited(c: ChildProcess, ms: number): Promise<boolean> {
    if (c.exitCode !== null || c.signalCode !== null) return Promise.resolve(true);
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(false), ms);
      c.once('exit', () => {
        clearTimeout(t);
        resolve(true);
      });
    });
  }

  it('removes the leftovers of a dead run and leaves a live sandbox and foreign names alone', async () => {
    const dead = deadPid();
    // A createSandbox() leftover: both namespaces, the cgroup, a temp dir with a bpffs, processes inside.
    const stale = `tpe2e-swp-${dead}`;
    const staleClient = await addNetns(`${stale}-c`);
    await addNetns(`${stale}-m`);
    const staleCg = addCgroup(stale);
    const staleDir = addTmpDir(stale);
    const staleBpffs = join(staleDir, 'bpffs');
    mkdirSync(staleBpffs);
    await execa('mount', ['-t', 'bpf', 'bpf', staleBpffs]);
    await execa('bpftool', ['map', 'create', join(staleBpffs, 'left_pin'), 'type', 'array', 'key', '4', 'value', '4', 'entries', '1', 'name', 'left_pin']);
    const inCgroup = await sleeper({ cgroup: staleCg });
    const inNetns = await sleeper({ netns: staleClient });
    // An eBPF-test leftover with its second namespace.
    const staleEbpf = `tpt-ebpf-swp-${dead}-1`;
    await addNetns(staleEbpf);
    await addNetns(`${staleEbpf}-o`);

    // Ours but alive (this process), and not ours at all.
    const live = `tpe2e-swplive-${process.pid}`;
    const liveNs = await addNetns(`${live}-c`);
    const liveCg = addCgroup(live);
    const liveDir = addTmpDir(live);
    const liveSleeper = await sleeper({ netns: liveNs });
    const foreignNs = await addNetns(`tpswpforeign-${dead}`);
    const foreignCg = addCgroup(`tpswpforeign-${dead}`);

    const report = await sweepStaleSandboxes();

    for (const ns of [`${stale}-c`, `${stale}-m`, staleEbpf, `${staleEbpf}-o`]) expect(existsSync(`/run/netns/${ns}`), ns).toBe(false);
    expect(existsSync(staleCg)).toBe(false);
    expect(readMounts().some((m) => m.mountPoint.startsWith(staleDir))).toBe(false);
    expect(existsSync(staleDir)).toBe(false);
    expect(await exited(inCgroup, scaledMs(3_000)), 'process in the stale cgroup').toBe(true);
    expect(await exited(inNetns, scaledMs(3_000)), 'process in the stale netns').toBe(true);
    // Another run's sweep may have got there first; whatever this one removed is reported.
    for (const line of report.removed) expect(line).toMatch(/^(netns|cgroup|umount|dir|kill) /);

    expect(existsSync(liveNs)).toBe(true);
    expect(existsSync(liveCg)).toBe(true);
    expect(existsSync(liveDir)).toBe(true);
    expect(liveSleeper.exitCode).toBeNull();
    expect(liveSleeper.signalCode).toBeNull();
    expect(existsSync(foreignNs)).toBe(true);
    expect(existsSync(foreignCg)).toBe(true);
    expect(report.problems.filter((p) => p.includes('swp'))).toEqual([]);
  });
});
