/**
 * One tpctl install or uninstall at a time on a host. Two concurrent eBPF installs
 * share pinned maps and could undo each other's pins on rollback; two iptables
 * installs could interleave their check-then-replace. The lock is an flock on a file
 * under /run, so it disappears with the process that held it.
 */
import { closeSync, constants, fstatSync, ftruncateSync, mkdirSync, openSync, readFileSync, rmdirSync, rmSync, statSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { PreflightError, TpError } from '../errors.js';
import { tryLockExclusive } from './libc.js';
import { requirePrivateDir } from './private-dir.js';

export const DEFAULT_LOCK_PATH = '/run/tpctl/tpctl.lock';

/** The lock file is never reached through a symbolic link (an ordinary user's link would make root open their file). */
const LOCK_OPEN_FLAGS = constants.O_RDWR | constants.O_CREAT | constants.O_APPEND | constants.O_NOFOLLOW;

export class LockBusyError extends TpError {
  constructor(message: string, hint: string) {
    super('ELOCKED', message, { exitCode: 3, hint });
  }
}

export interface LockOptions {
  path?: string;
  /** How long to wait for another tpctl to finish. */
  timeoutMs?: number;
  pollMs?: number;
}

/** Opens the lock file and takes the flock; undefined while someone else holds it. */
function tryAcquire(path: string): number | undefined {
  let fd: number;
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    // Checked on every attempt: the directory may be removed and re-created between two.
    requirePrivateDir('lock directory', dirname(path));
    fd = openSync(path, LOCK_OPEN_FLAGS, 0o600);
  } catch (e) {
    // The holder removed the (empty) directory between our mkdir and open: try again.
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    if ((e as NodeJS.ErrnoException).code === 'ELOOP') {
      throw new PreflightError(`lock file ${path}: is a symbolic link`, { hint: `tpctl does not follow links there: rm ${path}` });
    }
    throw e;
  }
  try {
    // A holder unlinks the file as it releases; a lock taken on that unlinked inode
    // is worth nothing, so the lock counts only if the path still names our inode.
    if (tryLockExclusive(fd) && fstatSync(fd).ino === statIno(path)) return fd;
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  closeSync(fd);
  return undefined;
}

function statIno(path: string): number | undefined {
  try {
    return statSync(path).ino;
  } catch {
    return undefined;
  }
}

/** Runs `fn` holding the host lock; waits up to timeoutMs for a running tpctl to finish. */
export async function withHostLock<T>(what: string, fn: () => Promise<T>, opts: LockOptions = {}): Promise<T> {
  const path = opts.path ?? DEFAULT_LOCK_PATH;
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const pollMs = opts.pollMs ?? 100;
  const deadline = Date.now() + timeoutMs;
  let fd: number | undefined;
  while ((fd = tryAcquire(path)) === undefined) {
    if (Date.now() >= deadline) {
      let holder = 'another tpctl';
      try {
        holder = readFileSync(path, 'utf8').trim() || holder;
      } catch {
        // released in the meantime: the next run will get it
      }
      throw new LockBusyError(
        `${what}: ${holder} is still running after ${Math.round(timeoutMs / 1000)} s`,
        'wait for it to finish and run the command again',
      );
    }
    await sleep(pollMs);
  }
  try {
    ftruncateSync(fd, 0);
    writeSync(fd, `tpctl pid ${process.pid} (${what})\n`);
    return await fn();
  } finally {
    // Unlink before unlocking, so the host keeps nothing of the lock once we are done;
    // /run/tpctl goes too when nothing else of ours (a bpffs pin directory) is in it.
    rmSync(path, { force: true });
    closeSync(fd);
    try {
      rmdirSync(dirname(path));
    } catch {
      // not empty (an eBPF install lives there) or already gone
    }
  }
}
