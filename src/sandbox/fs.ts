/**
 * The host-side pieces a sandbox is made of and removed by: the cgroup2 mount,
 * child cgroups, bpffs mounts and directories. Building (sandbox.ts) and the sweep of
 * dead runs' leftovers (leftovers.ts) both use them.
 */
import { existsSync, lstatSync, readFileSync, readdirSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { findCgroup2Mount as findCgroup2MountOrNone, readMounts, unmount } from '../host/mounts.js';
import { runCommand } from './commands.js';

/** The cgroup v2 mount point (src/host/mounts.ts); a sandbox cannot be built without one. */
export function findCgroup2Mount(): string {
  const mountPoint = findCgroup2MountOrNone();
  if (!mountPoint) throw new Error('sandbox: no cgroup2 mount in /proc/self/mountinfo (mount cgroup2 somewhere, e.g. /sys/fs/cgroup/unified)');
  return mountPoint;
}

export function isMountPoint(path: string): boolean {
  return readMounts().some((m) => m.mountPoint === path);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function readFileSafe(path: string): string {
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
export async function rmdirCgroup(cg: string): Promise<{ removed: boolean; problem?: string }> {
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
export async function unmountOrDetach(path: string): Promise<{ how?: 'umount' | 'umount -l'; problem?: string }> {
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

export function listNames(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** A real directory (not a symlink to one). */
export function isPlainDir(path: string): boolean {
  try {
    return lstatSync(path).isDirectory();
  } catch {
    return false;
  }
}

export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Mount points at or below dir, deepest first. */
export function mountPointsUnder(dir: string, fsType?: string): string[] {
  return readMounts()
    .filter((m) => (m.mountPoint === dir || m.mountPoint.startsWith(`${dir}/`)) && (!fsType || m.fsType === fsType))
    .map((m) => m.mountPoint)
    .sort((a, b) => b.length - a.length);
}

