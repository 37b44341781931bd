/**
 * The BPF programs attached to one cgroup itself, read from the kernel through bpftool
 * in a way that works on every tested kernel.
 *
 * Debian 12's bpftool 7.1 plain `cgroup show CGROUP` asks the kernel for per-program
 * attach flags, which kernels before 6.0 reject: it exits 255 there. `cgroup show
 * CGROUP effective` works on all of them. A cgroup's effective programs are its own
 * plus those it inherits from its ancestors (attached with BPF_F_ALLOW_MULTI, or with
 * BPF_F_ALLOW_OVERRIDE and not overridden), which are exactly the parent's effective
 * programs; so the cgroup's own programs are its effective set minus its parent's.
 */
import { dirname } from 'node:path';
import { runCommand } from './commands.js';
import { scaledMs } from './timeout-scale.js';

export interface CgroupProgram {
  id: number;
  attach_type: string;
  name: string;
}

async function effectivePrograms(cgroupPath: string): Promise<CgroupProgram[]> {
  const r = await runCommand(['bpftool', '-j', 'cgroup', 'show', cgroupPath, 'effective'], { timeoutMs: scaledMs(10_000) });
  if (r.exitCode !== 0) throw new Error(`bpftool cgroup show ${cgroupPath} effective: ${r.stderr.trim() || `exit ${r.exitCode}`}`);
  return JSON.parse(r.stdout.trim() || '[]') as CgroupProgram[];
}

/** Programs attached to `cgroupPath` itself (not inherited), in bpftool's order. */
export async function cgroupOwnPrograms(cgroupPath: string): Promise<CgroupProgram[]> {
  const [mine, parents] = await Promise.all([effectivePrograms(cgroupPath), effectivePrograms(dirname(cgroupPath))]);
  const inherited = new Set(parents.map((p) => `${p.attach_type}/${p.id}`));
  return mine
    .filter((p) => !inherited.has(`${p.attach_type}/${p.id}`))
    .map(({ id, attach_type, name }) => ({ id, attach_type, name }));
}
