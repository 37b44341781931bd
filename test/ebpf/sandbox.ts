/**
 * The privileged eBPF tests' sandbox: src/sandbox/sandbox.ts's two-host network
 * (the engine runs on the mesh host, whose veth carries the instance addresses), its
 * child cgroup and its bpffs mount, plus what these tests need on top: running the
 * built engine in the mesh host's network namespace (`nsenter --net`, because tc
 * attaches in the caller's namespace) and bpftool/tc views of what is attached.
 * destroy() removes everything, even after a failed test.
 */
import { readdirSync, rmdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { REPO_ROOT, buildDist as buildDistOnce } from '../fixtures/dist.js';
import type { TransparentProxyConfig } from '../../src/config/types.js';
import { defaultConfig } from '../fixtures/config.js';
import { readMounts } from '../../src/host/mounts.js';
import { createSandbox } from '../../src/sandbox/sandbox.js';
import type { Sandbox } from '../../src/sandbox/types.js';
import { scaledMs } from '../../src/sandbox/timeout-scale.js';
import { cgroupOwnPrograms, type CgroupProgram } from '../../src/sandbox/cgroup-programs.js';

export { REPO_ROOT };
const ENGINE_MODULE = join(REPO_ROOT, 'dist', 'ebpf', 'index.js');
const STEPS_MODULE = join(REPO_ROOT, 'dist', 'steps.js');
export const PREBUILT = join(REPO_ROOT, 'bpf', 'prebuilt');

/** Builds dist/ once per worker and checks the engine module is there. */
export function buildDist(): Promise<void> {
  return buildDistOnce(ENGINE_MODULE);
}

const IP4 = '10.77.0.2';
const IP6 = 'fd77::2';

export function baseConfig(over: { bpffsPath: string; cgroupPath: string }): TransparentProxyConfig {
  const cfg = defaultConfig();
  cfg.outbound.excludePorts = [{ from: 22, to: 22 }];
  cfg.outbound.excludeIps = [{ family: 'ipv4', address: '10.9.0.0', prefixLength: 16 }];
  cfg.outbound.excludePortsForUids = [{ protocol: 'tcp', ports: [], uids: [{ from: 1000, to: 1002 }] }];
  cfg.dns = { ...cfg.dns, mode: 'resolvconf', servers: { ipv4: ['10.77.0.53'], ipv6: ['fd77::53'] } };
  cfg.ebpf = {
    enabled: true,
    instanceIp: { ipv4: IP4, ipv6: IP6 },
    programsSourcePath: PREBUILT,
    bpffsPath: over.bpffsPath,
    cgroupPath: over.cgroupPath,
  };
  return cfg;
}

export interface EngineRun {
  result?: { changed: boolean; lines: string[] };
  error?: { name: string; code?: string; message: string; oneLine: string };
  logs: string[];
  stderr: string;
}

const RUNNER = `
const [modPath, stepsPath, op, json] = process.argv.slice(1);
const m = await import(modPath);
const { Steps, stepHooksFromEnv } = await import(stepsPath);
const steps = new Steps(stepHooksFromEnv(process.env));
const logs = [];
const log = { info: (s) => logs.push('info: ' + s), warn: (s) => logs.push('warn: ' + s), debug: (s) => logs.push('debug: ' + s) };
const arg = JSON.parse(json);
try {
  const result = op === 'install' ? await m.installEbpf(arg, log, { steps }) : await m.uninstallEbpf(arg, log, { steps });
  console.log(JSON.stringify({ result, logs }));
} catch (e) {
  console.log(JSON.stringify({ error: { name: e.name, code: e.code, message: e.message, oneLine: e.oneLine ? e.oneLine() : String(e.stack) }, logs }));
}
`;

export class EbpfSandbox {
  readonly name: string;
  readonly netnsPath: string;
  /** The mesh host's interface, holding the instance addresses. */
  readonly iface: string;
  readonly cgroup: string;
  /** Our own bpffs mount; the engine pins under `${bpffs}/tp` unless a test says otherwise. */
  readonly bpffs: string;
  /** Scratch directory (holds the bpffs mount), removed by destroy(). */
  readonly dir: string;

  private constructor(private readonly sandbox: Sandbox) {
    this.name = sandbox.name;
    this.netnsPath = `/run/netns/${sandbox.netns.mesh}`;
    this.iface = sandbox.iface.mesh;
    this.cgroup = sandbox.cgroupPath;
    this.bpffs = sandbox.bpffsPath;
    this.dir = sandbox.tmpDir;
  }

  static async create(tag: string): Promise<EbpfSandbox> {
    return new EbpfSandbox(await createSandbox({ name: `tpe2e-ebpf-${tag}-${process.pid}` }));
  }

  /** Runs a shell command inside the sandbox's network namespace. */
  async sh(cmd: string): Promise<string> {
    const r = await execa('nsenter', [`--net=${this.netnsPath}`, 'sh', '-c', cmd], { timeout: scaledMs(30_000) });
    return String(r.stdout);
  }

  config(over: { bpffsPath?: string } = {}): TransparentProxyConfig {
    const cfg = baseConfig({ bpffsPath: over.bpffsPath ?? join(this.bpffs, 'tp'), cgroupPath: this.cgroup });
    cfg.ebpf.instanceIp = { ipv4: this.sandbox.ipv4.mesh, ipv6: this.sandbox.ipv6.mesh };
    return cfg;
  }

  async run(op: 'install' | 'uninstall', arg: unknown, env: Record<string, string> = {}, netnsPath = this.netnsPath): Promise<EngineRun> {
    const r = await execa('nsenter', [`--net=${netnsPath}`, process.execPath, '--input-type=module', '-e', RUNNER, ENGINE_MODULE, STEPS_MODULE, op, JSON.stringify(arg)], {
      reject: false,
      timeout: scaledMs(45_000),
      env: { ...env },
    });
    const line = String(r.stdout).trim().split('\n').pop() ?? '';
    try {
      return { ...(JSON.parse(line) as Omit<EngineRun, 'stderr'>), stderr: String(r.stderr) };
    } catch {
      throw new Error(`engine runner crashed (exit ${r.exitCode}): ${String(r.stderr)}\n${String(r.stdout)}`);
    }
  }

  install(cfg: TransparentProxyConfig, env: Record<string, string> = {}): Promise<EngineRun> {
    return this.run('install', cfg, env);
  }

  uninstall(bpffsPath = join(this.bpffs, 'tp'), netnsPath = this.netnsPath): Promise<EngineRun> {
    return this.run('uninstall', { dryRun: false, verbose: false, ebpf: { enabled: true, bpffsPath }, iptablesBackend: 'auto' }, {}, netnsPath);
  }

  /** Programs attached to the sandbox cgroup itself (what the kernel reports). */
  cgroupPrograms(): Promise<CgroupProgram[]> {
    return cgroupOwnPrograms(this.cgroup);
  }

  async tcFilters(): Promise<Array<Record<string, unknown>>> {
    const out = await this.sh(`tc -j filter show dev ${this.iface} ingress`);
    return JSON.parse(out || '[]') as Array<Record<string, unknown>>;
  }

  async qdiscKinds(): Promise<string[]> {
    const out = await this.sh(`tc -j qdisc show dev ${this.iface}`);
    return (JSON.parse(out || '[]') as Array<{ kind: string }>).map((q) => q.kind);
  }

  bpfMountsUnder(): string[] {
    return readMounts()
      .filter((m) => m.fsType === 'bpf' && m.mountPoint.startsWith(this.dir))
      .map((m) => m.mountPoint);
  }

  async destroy(): Promise<void> {
    const problems: string[] = [];
    // A bpffs the engine mounted itself under our dir (and failed to remove) is not the
    // sandbox's: unpin (which detaches) and unmount it first, or the dir cannot go.
    for (const mnt of this.bpfMountsUnder().filter((m) => m !== this.bpffs).reverse()) {
      try {
        removePins(mnt);
        await execa('umount', [mnt], { timeout: scaledMs(10_000) });
      } catch (e) {
        problems.push(`umount ${mnt}: ${(e as Error).message}`);
      }
    }
    // The sandbox's own bpffs: unmounting it drops the engine's pins, detaching its links.
    await this.sandbox.destroy().catch((e: unknown) => problems.push((e as Error).message));
    if (problems.length > 0) throw new Error(`sandbox ${this.name} cleanup: ${problems.join('; ')}`);
  }
}

function removePins(dir: string): void {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) {
      removePins(p);
      rmdirSync(p);
    } else if (!entry.name.endsWith('.debug')) {
      unlinkSync(p);
    }
  }
}

/** Compiles a test's own small BPF C program into dir/<name>.bpf.o and returns that path. */
export async function compileBpf(dir: string, name: string, source: string): Promise<string> {
  const src = join(dir, `${name}.bpf.c`);
  const obj = join(dir, `${name}.bpf.o`);
  writeFileSync(src, source);
  const arch = String((await execa('uname', ['-m'])).stdout).trim();
  const include = join(REPO_ROOT, 'bpf', 'include');
  await execa('clang', ['-O2', '-g', '-target', 'bpf', `-I${include}`, `-I/usr/include/${arch}-linux-gnu`, '-c', src, '-o', obj], { timeout: scaledMs(60_000) });
  return obj;
}

/**
 * A throwaway "foreign" program (someone else's connect4 hook that allows every
 * connect and counts them), built into dir with clang. Returns the object path.
 */
export function buildForeignObject(dir: string): Promise<string> {
  return compileBpf(
    dir,
    'foreign',
    `#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __type(key, __u32); __type(value, __u64); __uint(max_entries, 1); } foreign_hits SEC(".maps");
SEC("cgroup/connect4")
int foreign_c4(struct bpf_sock_addr *ctx) {
  __u32 k = 0;
  __u64 *v = bpf_map_lookup_elem(&foreign_hits, &k);
  if (v) __sync_fetch_and_add(v, 1);
  return 1;
}
char LICENSE[] SEC("license") = "GPL";
`,
  );
}
