/**
 * What tpctl did to get a bpffs at the pin path (directories it created, a bpffs it
 * mounted), kept outside that bpffs while no install record inside it can say so:
 * written before the first mkdir and removed once the record holds the same facts
 * (install), written again before the record is removed and deleted once the bpffs
 * is unmounted and the directories are gone (uninstall). A journal found later means
 * a tpctl was killed in between; the next install or uninstall finishes its work.
 *
 * It lives in tpctl's state directory (/run/tpctl, root-only, 0700): a tmpfs, so it
 * goes at reboot together with the bpffs mounts it describes.
 */
import { closeSync, constants, fstatSync, mkdirSync, openSync, readSync, renameSync, rmSync, writeSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { EngineError } from '../errors.js';
import { requirePrivateDir, untrustedReason } from '../host/private-dir.js';

export const DEFAULT_STATE_DIR = '/run/tpctl';

export interface BpffsJournal {
  bpffsPath: string;
  /** tpctl mounts (mounted) a bpffs at bpffsPath. */
  mounted: boolean;
  /** Directories tpctl creates (created), outermost first. */
  createdDirs: string[];
}

const MAX_BYTES = 64 * 1024;

export function journalPath(stateDir: string, bpffsPath: string): string {
  const id = createHash('sha256').update(bpffsPath).digest('hex').slice(0, 16);
  return join(stateDir, `bpffs-${id}.json`);
}

export function writeBpffsJournal(stateDir: string, j: BpffsJournal): void {
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  requirePrivateDir('tpctl state directory', stateDir);
  const path = journalPath(stateDir, j.bpffsPath);
  const tmp = `${path}.new`;
  rmSync(tmp, { force: true });
  const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  try {
    writeSync(fd, JSON.stringify(j));
  } finally {
    closeSync(fd);
  }
  // rename is atomic: a reader sees the old journal or the new one, never half of one.
  renameSync(tmp, path);
}

export function readBpffsJournal(stateDir: string, bpffsPath: string): BpffsJournal | undefined {
  const path = journalPath(stateDir, bpffsPath);
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'ELOOP') throw new EngineError(`${path}: is a symbolic link`, { hint: `remove it: rm ${path}` });
    throw e;
  }
  try {
    const reason = untrustedReason(path, fstatSync(fd), false);
    if (reason) throw new EngineError(`tpctl journal: ${reason}`, { hint: `remove it: rm ${path}` });
    const buf = Buffer.alloc(MAX_BYTES);
    const n = readSync(fd, buf, 0, buf.length, 0);
    const j = JSON.parse(buf.subarray(0, n).toString('utf8')) as BpffsJournal;
    return j.bpffsPath === bpffsPath ? j : undefined;
  } catch (e) {
    if (e instanceof SyntaxError) throw new EngineError(`${path}: unreadable journal (${e.message})`, { hint: `remove it: rm ${path}` });
    throw e;
  } finally {
    closeSync(fd);
  }
}

export function removeBpffsJournal(stateDir: string, bpffsPath: string): void {
  rmSync(journalPath(stateDir, bpffsPath), { force: true });
}
