import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { LockBusyError, withHostLock } from '../../src/host/lock.js';
import { PreflightError } from '../../src/errors.js';
import { REPO_ROOT, buildDist } from '../fixtures/dist.js';
import { scaledMs } from '../../src/sandbox/timeout-scale.js';

const LOCK_MODULE = join(REPO_ROOT, 'dist', 'host', 'lock.js');
let dir: string;
let holder: ChildProcess | undefined;

beforeAll(async () => {
  await buildDist(LOCK_MODULE);
}, scaledMs(180_000));

afterEach(() => {
  holder?.kill('SIGKILL');
  holder = undefined;
  rmSync(dir, { recursive: true, force: true });
});

/**
 * Another process that takes the lock, says "held", keeps it for holdMs and, when
 * doneMarker is given, creates that file as the last step inside its critical section.
 */
function holdLock(path: string, holdMs: number, doneMarker?: string): Promise<ChildProcess> {
  const markDone = doneMarker ? `(await import('node:fs')).writeFileSync(${JSON.stringify(doneMarker)}, 'done');` : '';
  const script = `import { withHostLock } from ${JSON.stringify(LOCK_MODULE)};
await withHostLock('install transparent-proxy', async () => { console.log('held'); await new Promise((r) => setTimeout(r, ${holdMs})); ${markDone} }, { path: ${JSON.stringify(path)} });`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  holder = child;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('holder did not take the lock in time')), scaledMs(10_000));
    child.stdout?.on('data', (d: Buffer) => {
      if (d.toString().includes('held')) {
        clearTimeout(timer);
        resolve(child);
      }
    });
    child.once('exit', (code) => reject(new Error(`holder exited (${code}) before taking the lock`)));
  });
}

describe('withHostLock', () => {
  it('runs the function and leaves no lock file or directory behind', async () => {
    dir = mkdtempSync(join(tmpdir(), `tpt-host-lock-${process.pid}-`));
    const path = join(dir, 'run', 'tpctl.lock');
    const seen = await withHostLock('install transparent-proxy', async () => existsSync(path), { path });
    expect(seen).toBe(true);
    expect(existsSync(path)).toBe(false);
    expect(existsSync(join(dir, 'run'))).toBe(false);
  });

  it('gives up with one line naming the holder when another tpctl keeps the lock', async () => {
    dir = mkdtempSync(join(tmpdir(), `tpt-host-lock-${process.pid}-`));
    const path = join(dir, 'tpctl.lock');
    const child = await holdLock(path, 5_000);
    const attempt = withHostLock('uninstall transparent-proxy', async () => 'ran', { path, timeoutMs: 300, pollMs: 20 });
    await expect(attempt).rejects.toBeInstanceOf(LockBusyError);
    await expect(attempt).rejects.toThrow(
      `uninstall transparent-proxy: tpctl pid ${child.pid} (install transparent-proxy) is still running after 0 s`,
    );
  });

  it('waits for a running tpctl to finish, then runs', async () => {
    dir = mkdtempSync(join(tmpdir(), `tpt-host-lock-${process.pid}-`));
    const path = join(dir, 'tpctl.lock');
    const marker = join(dir, 'holder-done');
    const child = await holdLock(path, 700, marker);
    const exited = new Promise((r) => child.once('exit', r));
    // The holder may still be exiting when it has released the lock; what must not
    // happen is our critical section starting before the holder's has ended.
    const result = await withHostLock('install transparent-proxy', async () => (existsSync(marker) ? 'after' : 'overlapped'), {
      path,
      timeoutMs: scaledMs(10_000),
      pollMs: 20,
    });
    await exited;
    expect(result).toBe('after');
  });

  it('is free at once when the holder is killed (the kernel drops an flock with its process)', async () => {
    dir = mkdtempSync(join(tmpdir(), `tpt-host-lock-${process.pid}-`));
    const path = join(dir, 'tpctl.lock');
    const child = await holdLock(path, 60_000);
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
    await expect(withHostLock('install transparent-proxy', async () => 'ran', { path, timeoutMs: 200, pollMs: 20 })).resolves.toBe('ran');
  });

  describe('the lock directory is root-only and never reached through a link', () => {
    const run = (path: string) => withHostLock('install transparent-proxy', async () => statSync(dirname(path)).mode & 0o7777, { path, timeoutMs: 200, pollMs: 20 });

    it('creates it 0700', async () => {
      dir = mkdtempSync(join(tmpdir(), `tpt-host-lock-${process.pid}-`));
      expect(await run(join(dir, 'run', 'tpctl.lock'))).toBe(0o700);
    });

    it.each<[string, (lockDir: string) => void, string]>([
      ['owned by another user', (d) => { mkdirSync(d, { mode: 0o700 }); chownSync(d, 65534, 65534); }, 'is owned by uid 65534, not root'],
      ['writable by others', (d) => { mkdirSync(d); chmodSync(d, 0o777); }, 'is writable by group or others (mode 0777)'],
      ['a symbolic link', (d) => { mkdirSync(`${d}-real`, { mode: 0o700 }); symlinkSync(`${d}-real`, d); }, 'is a symbolic link'],
    ])('refuses a lock directory %s', async (_name, plant, why) => {
      dir = mkdtempSync(join(tmpdir(), `tpt-host-lock-${process.pid}-`));
      const lockDir = join(dir, 'run');
      plant(lockDir);
      const attempt = run(join(lockDir, 'tpctl.lock'));
      await expect(attempt).rejects.toBeInstanceOf(PreflightError);
      await expect(attempt).rejects.toThrow(`lock directory: ${lockDir} ${why}`);
      expect(existsSync(join(lockDir, 'tpctl.lock')), 'nothing created in it').toBe(false);
    });

    it('refuses a lock file that is a symbolic link', async () => {
      dir = mkdtempSync(join(tmpdir(), `tpt-host-lock-${process.pid}-`));
      const lockDir = join(dir, 'run');
      mkdirSync(lockDir, { mode: 0o700 });
      symlinkSync(join(dir, 'target'), join(lockDir, 'tpctl.lock'));
      await expect(run(join(lockDir, 'tpctl.lock'))).rejects.toThrow(`lock file ${join(lockDir, 'tpctl.lock')}: is a symbolic link`);
      expect(existsSync(join(dir, 'target')), 'the link target was not created').toBe(false);
    });
  });
});
