/**
 * A private sandbox for the privileged eBPF tests: its own network namespace
 * (veth pair d0/d1 with the instance addresses on d0), its own child cgroup under
 * the cgroup2 mount, and its own bpffs mount. The engine is called from a child
 * process entered into the namespace (`nsenter --net`), because tc attaches in
 * the caller's network namespace. destroy() removes everything, even after a
 * failed test.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, rmdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { REPO_ROOT, buildDist as buildDistOnce } from '../fixtures/dist.js';
import type { TransparentProxyConfig } from '../../src/config/types.js';
import { defaultConfig } from '../fixtures/config.js';
import { findCgroup2Mount, readMounts } from '../../src/host/mounts.js';

export { REPO_ROOT };
const ENGINE_MODULE = join(REPO_ROOT, 'dist', 'ebpf', 'index.js');
export const PREBUILT = join(REPO_ROOT, 'bpf', 'prebuilt');

/** Builds dist/ once per worker and checks the engine module is there. */
export function buildDist(): Promise<void> {
  return buildDistOnce(ENGINE_MODULE);
}

export const IP4 = '10.77.0.2';
export const IP6 = 'fd77::2';

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
const [modPath, op, json] = process.argv.slice(1);
const m = await import(modPath);
const logs = [];
const log = { info: (s) => logs.push('info: ' + s), warn: (s) => logs.push('warn: ' + s), debug: (s) => logs.push('debug: ' + s) };
const arg = JSON.parse(json);
try {
  const result = op === 'install' ? await m.installEbpf(arg, log) : await m.uninstallEbpf(arg, log);
  console.log(JSON.stringify({ result, logs }));
} catch (e) {
  console.log(JSON.stringify({ error: { name: e.name, code: e.code, message: e.message, oneLine: e.oneLine ? e.oneLine() : String(e.stack) }, logs }));
}
`;

let counter = 0;

export class EbpfSandbox {
  readonly netnsPath: string;
  readonly cgroup: string;
  /** Our own bpffs mount; the engine pins under `${bpffs}/tp` unless a test says otherwise. */
  readonly bpffs: string;
  private mountedOwn = false;

  private constructor(
    readonly name: string,
    readonly dir: string,
    cgroupRoot: string,
  ) {
    this.netnsPath = `/run/netns/${name}`;
    this.cgroup = join(cgroupRoot, name);
    this.bpffs = join(dir, 'bpffs');
  }

  static async create(tag: string): Promise<EbpfSandbox> {
    const cgroupRoot = findCgroup2Mount(readMounts());
    if (!cgroupRoot) throw new Error('no cgroup2 mount');
    const name = `tpt-ebpf-${tag}-${process.pid}-${++counter}`;
    const sb = new EbpfSandbox(name, mkdtempSync(join(tmpdir(), `${name}-`)), cgroupRoot);
    try {
      await execa('ip', ['netns', 'add', name], { timeout: 10_000 });
      await sb.sh(
        'ip link set lo up && ip link add d0 type veth peer name d1 && ' +
          `ip addr add ${IP4}/24 dev d0 && ip -6 addr add ${IP6}/64 dev d0 nodad && ` +
          'ip link set d1 up && ip link set d0 up',
      );
      mkdirSync(sb.cgroup);
      mkdirSync(sb.bpffs);
      await execa('mount', ['-t', 'bpf', 'bpf', sb.bpffs], { timeout: 10_000 });
      sb.mountedOwn = true;
    } catch (e) {
      await sb.destroy();
      throw e;
    }
    return sb;
  }

  /** Runs a shell command inside the sandbox's network namespace. */
  async sh(cmd: string): Promise<string> {
    const r = await execa('nsenter', [`--net=${this.netnsPath}`, 'sh', '-c', cmd], { timeout: 30_000 });
    return String(r.stdout);
  }

  config(over: { bpffsPath?: string } = {}): TransparentProxyConfig {
    return baseConfig({ bpffsPath: over.bpffsPath ?? join(this.bpffs, 'tp'), cgroupPath: this.cgroup });
  }

  async run(op: 'install' | 'uninstall', arg: unknown, env: Record<string, string> = {}, netnsPath = this.netnsPath): Promise<EngineRun> {
    const r = await execa('nsenter', [`--net=${netnsPath}`, process.execPath, '--input-type=module', '-e', RUNNER, ENGINE_MODULE, op, JSON.stringify(arg)], {
      reject: false,
      timeout: 45_000,
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

  /** Programs attached to the sandbox cgroup (bpftool's view). */
  async cgroupPrograms(): Promise<Array<{ id: number; attach_type: string; name: string }>> {
    const r = await execa('bpftool', ['-j', 'cgroup', 'show', this.cgroup], { timeout: 10_000 });
    return JSON.parse(String(r.stdout) || '[]') as Array<{ id: number; attach_type: string; name: string }>;
  }

  async tcFilters(): Promise<Array<Record<string, unknown>>> {
    const out = await this.sh('tc -j filter show dev d0 ingress');
    return JSON.parse(out || '[]') as Array<Record<string, unknown>>;
  }

  async qdiscKinds(): Promise<string[]> {
    const out = await this.sh('tc -j qdisc show dev d0');
    return (JSON.parse(out || '[]') as Array<{ kind: string }>).map((q) => q.kind);
  }

  bpfMountsUnder(): string[] {
    return readMounts()
      .filter((m) => m.fsType === 'bpf' && m.mountPoint.startsWith(this.dir))
      .map((m) => m.mountPoint);
  }

  async destroy(): Promise<void> {
    const problems: string[] = [];
    const step = async (what: string, fn: () => Promise<unknown> | unknown): Promise<void> => {
      try {
        await fn();
      } catch (e) {
        problems.push(`${what}: ${(e as Error).message}`);
      }
    };
    // Links pinned anywhere under our dir: unpinning them detaches the programs.
    for (const mnt of this.bpfMountsUnder().reverse()) {
      await step(`unpin ${mnt}`, () => removePins(mnt));
      await step(`umount ${mnt}`, () => execa('umount', [mnt], { timeout: 10_000 }));
    }
    await step('netns', async () => {
      if (existsSync(this.netnsPath)) await execa('ip', ['netns', 'del', this.name], { timeout: 10_000 });
    });
    await step('cgroup', () => {
      if (existsSync(this.cgroup)) rmdirSync(this.cgroup);
    });
    await step('dir', () => rmSync(this.dir, { recursive: true, force: true }));
    void this.mountedOwn;
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

/**
 * A throwaway "foreign" program (someone else's connect4 hook that allows every
 * connect and counts them), built into dir with clang. Returns the object path.
 */
export async function buildForeignObject(dir: string): Promise<string> {
  const src = join(dir, 'foreign.bpf.c');
  const obj = join(dir, 'foreign.bpf.o');
  writeFileSync(
    src,
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
  const arch = String((await execa('uname', ['-m'])).stdout).trim();
  await execa('clang', ['-O2', '-g', '-target', 'bpf', `-I/usr/include/${arch}-linux-gnu`, '-c', src, '-o', obj], { timeout: 60_000 });
  return obj;
}

export function readText(path: string): string {
  return readFileSync(path, 'utf8');
}
