/**
 * Mount table queries (/proc/self/mountinfo) and the two mount calls tpctl makes
 * itself: mounting and unmounting a bpffs. Those go through libc (src/ffi.ts)
 * rather than mount(8) so the error is a real errno, not parsed text.
 */
import { readFileSync } from 'node:fs';
import { resolve, sep } from 'node:path';
import { errnoName, koffi, loadLibrary } from '../ffi.js';
import { PreflightError } from '../errors.js';

export interface MountEntry {
  mountPoint: string;
  fsType: string;
  source: string;
}

/** mountinfo escapes space, tab, newline and backslash as \ooo octal. */
function unescapeMountField(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

export function parseMountInfo(text: string): MountEntry[] {
  const entries: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const fields = line.split(' ');
    const dash = fields.indexOf('-');
    if (dash < 0 || fields.length < dash + 3) continue;
    entries.push({
      mountPoint: unescapeMountField(fields[4] ?? ''),
      fsType: fields[dash + 1] ?? '',
      source: unescapeMountField(fields[dash + 2] ?? ''),
    });
  }
  return entries;
}

export function readMounts(mountInfoText?: string): MountEntry[] {
  return parseMountInfo(mountInfoText ?? readFileSync('/proc/self/mountinfo', 'utf8'));
}

function isInside(path: string, mountPoint: string): boolean {
  if (mountPoint === '/') return true;
  return path === mountPoint || path.startsWith(mountPoint + sep);
}

/**
 * The mount a path lives on: the last-mounted entry whose mount point is the
 * longest prefix of the path (later entries shadow earlier ones at the same point).
 */
export function mountOf(path: string, mounts = readMounts()): MountEntry | undefined {
  const abs = resolve(path);
  let best: MountEntry | undefined;
  for (const m of mounts) {
    if (!isInside(abs, m.mountPoint)) continue;
    if (!best || m.mountPoint.length >= best.mountPoint.length) best = m;
  }
  return best;
}

/** The first cgroup2 mount (on hybrid hosts /sys/fs/cgroup/unified, on unified hosts /sys/fs/cgroup). */
export function findCgroup2Mount(mounts = readMounts()): string | undefined {
  return mounts.find((m) => m.fsType === 'cgroup2')?.mountPoint;
}

type MountFn = (source: string, target: string, fsType: string, flags: number, data: string | null) => number;
type Umount2Fn = (target: string, flags: number) => number;
let mountFn: MountFn | undefined;
let umount2Fn: Umount2Fn | undefined;

function libcMount(): { mount: MountFn; umount2: Umount2Fn } {
  if (!mountFn || !umount2Fn) {
    const libc = loadLibrary('libc.so.6');
    mountFn = libc.func(
      'int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data)',
    ) as MountFn;
    umount2Fn = libc.func('int umount2(const char *target, int flags)') as Umount2Fn;
  }
  return { mount: mountFn, umount2: umount2Fn };
}

/**
 * Mounts a bpffs at dir, root-only (mode=0700): a bpffs mounted without a mode is
 * world-writable and sticky, and anyone who can create or delete entries in a pin
 * directory can detach the programs its link pins hold.
 */
export function mountBpffs(dir: string): void {
  const { mount } = libcMount();
  if (mount('bpf', dir, 'bpf', 0, 'mode=0700') !== 0) {
    const errno = koffi.errno();
    throw new PreflightError(`mount bpffs at ${dir}: ${errnoName(errno)}`, {
      hint: 'pass --ebpf-bpffs-path a directory inside a mounted bpffs (e.g. /sys/fs/bpf/tpctl)',
    });
  }
}

export function unmount(dir: string): void {
  const { umount2 } = libcMount();
  if (umount2(dir, 0) !== 0) {
    const errno = koffi.errno();
    throw new PreflightError(`unmount ${dir}: ${errnoName(errno)}`);
  }
}
