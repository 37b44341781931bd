/**
 * Directories whose contents decide what tpctl does (the bpffs pin directory, the
 * /run/tpctl state and lock directory) must be changeable by root alone: anyone
 * who can add, remove or replace an entry there can detach the proxy's programs or
 * make tpctl build on their objects. Every check here uses lstat, never stat:
 * tpctl does not follow symbolic links in these paths.
 */
import { lstatSync, type Stats } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { PreflightError } from '../errors.js';

const S_ISVTX = 0o1000;
const GROUP_OTHER_WRITE = 0o022;

function lstatOrUndefined(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/** The path and every ancestor, root first. */
function withAncestors(abs: string): string[] {
  const out: string[] = [];
  for (let p = abs; ; p = dirname(p)) {
    out.unshift(p);
    if (dirname(p) === p) break;
  }
  return out;
}

const mode = (st: Stats): string => (st.mode & 0o7777).toString(8).padStart(4, '0');

/**
 * Why `st` (at `path`) may not be trusted, or undefined. Ancestors may be sticky and
 * world-writable (/tmp): others can add entries there but not replace ours.
 */
export function untrustedReason(path: string, st: Stats, isAncestor: boolean): string | undefined {
  if (st.isSymbolicLink()) return `${path} is a symbolic link`;
  const euid = process.geteuid?.() ?? 0;
  if (st.uid !== 0 && st.uid !== euid) return `${path} is owned by uid ${st.uid}, not root`;
  if (st.mode & GROUP_OTHER_WRITE && !(isAncestor && st.mode & S_ISVTX)) {
    return `${path} is writable by group or others (mode ${mode(st)})`;
  }
  return undefined;
}

function fixHint(path: string, reason: string): string {
  if (reason.includes('symbolic link')) return 'tpctl does not follow symbolic links there: pass the real path';
  if (reason.includes('owned by')) return `only root may own it: chown root:root ${path} && chmod go-w ${path}, or pass another path`;
  return `chmod go-w ${path} (tpctl's own directories are 0700), or pass another path`;
}

/**
 * Refuses `path` (what: e.g. `--ebpf-bpffs-path /run/tpctl/bpf`) when it, or an
 * ancestor, is a symbolic link, belongs to another user, or can be written by group or
 * others. Missing trailing components are fine: tpctl creates them (0700).
 */
export function requirePrivateDir(what: string, path: string): void {
  const abs = resolve(path);
  for (const p of withAncestors(abs)) {
    const st = lstatOrUndefined(p);
    if (!st) return;
    const reason = untrustedReason(p, st, p !== abs);
    if (reason) throw new PreflightError(`${what}: ${reason}`, { hint: fixHint(p, reason) });
    if (!st.isDirectory()) throw new PreflightError(`${what}: ${p} is not a directory`);
  }
}
