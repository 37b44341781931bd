/**
 * Processes started inside a sandbox host (optionally as another uid, optionally in
 * the sandbox cgroup), with their stdout kept line by line and bounded waits on it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import type { Sandbox, SandboxHost, SandboxProcess } from './types.js';
import { scaledMs } from './timeout-scale.js';

export interface SpawnOptions {
  /** Run as this uid/gid (setpriv); root when omitted. */
  uid?: number;
  /** Join the sandbox cgroup before exec (mesh host only). */
  inCgroup?: boolean;
  argv: string[];
  env?: Record<string, string>;
}

/** Starts a process in one host of the sandbox; destroy() stops it. */
export function spawnIn(sandbox: Sandbox, host: SandboxHost, opts: SpawnOptions): SandboxProcess {
  if (opts.inCgroup && host !== 'mesh') {
    throw new Error('spawnIn: only mesh-host processes may join the cgroup (cgroup hooks are not netns-scoped)');
  }
  const inner = ['nsenter', `--net=/run/netns/${sandbox.netns[host]}`, '--'];
  if (opts.uid !== undefined) {
    inner.push('setpriv', `--reuid=${opts.uid}`, `--regid=${opts.uid}`, '--clear-groups', '--');
  }
  inner.push(...opts.argv);
  // The shell writes its own pid into the cgroup and then execs: the final program
  // (and everything it starts) is in the cgroup from its first instruction.
  const script = opts.inCgroup ? 'echo $$ > "$1" && shift && exec "$@"' : 'shift && exec "$@"';
  const cgroupProcs = opts.inCgroup ? join(sandbox.cgroupPath, 'cgroup.procs') : '-';
  const child = spawn('sh', ['-c', script, 'sh', cgroupProcs, ...inner], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, ...opts.env },
  });
  if (child.pid === undefined) throw new Error(`spawnIn: could not start ${opts.argv.join(' ')}`);
  const proc = wrapChild(child);
  sandbox.processes.add(proc);
  child.once('exit', () => sandbox.processes.delete(proc));
  return proc;
}

function wrapChild(child: ChildProcess): SandboxProcess {
  const lines: string[] = [];
  const lineWaiters = new Set<() => void>();
  let stderrText = '';
  let partial = '';
  let exitCode: number | null | undefined;
  child.stdout?.setEncoding('utf8');
  child.stdout?.on('data', (chunk: string) => {
    partial += chunk;
    let nl: number;
    while ((nl = partial.indexOf('\n')) >= 0) {
      lines.push(partial.slice(0, nl));
      partial = partial.slice(nl + 1);
    }
    for (const w of lineWaiters) w();
  });
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    if (stderrText.length < 64_000) stderrText += chunk;
  });
  child.stdin?.on('error', () => {});
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => {
      exitCode = code;
      for (const w of lineWaiters) w();
      resolve(code);
    });
  });

  const proc: SandboxProcess = {
    pid: child.pid as number,
    child,
    lines,
    stderr: () => stderrText,
    waitForLine(pred, timeoutMs) {
      return new Promise((resolve, reject) => {
        const check = (): boolean => {
          const found = lines.find(pred);
          if (found !== undefined) {
            done();
            resolve(found);
            return true;
          }
          if (exitCode !== undefined) {
            done();
            reject(new Error(`process ${proc.pid} exited (${exitCode}) before the expected output; stderr: ${stderrText.trim().slice(-500)}`));
            return true;
          }
          return false;
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`process ${proc.pid}: no expected output within ${timeoutMs} ms; stdout: ${lines.join(' | ').slice(-500)}; stderr: ${stderrText.trim().slice(-500)}`));
        }, timeoutMs);
        const waiter = (): void => void check();
        const done = (): void => {
          clearTimeout(timer);
          lineWaiters.delete(waiter);
        };
        lineWaiters.add(waiter);
        check();
      });
    },
    waitForExit(timeoutMs) {
      if (exitCode !== undefined) return Promise.resolve(exitCode);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`process ${proc.pid} still running after ${timeoutMs} ms`)), timeoutMs);
        void exited.then((code) => {
          clearTimeout(timer);
          resolve(code);
        });
      });
    },
    writeLine(text) {
      child.stdin?.write(`${text}\n`);
    },
    closeStdin() {
      child.stdin?.end();
    },
    async stop() {
      if (exitCode !== undefined) return;
      try {
        process.kill(proc.pid, 'SIGTERM');
      } catch {
        return;
      }
      try {
        await proc.waitForExit(scaledMs(2_000));
      } catch {
        try {
          process.kill(proc.pid, 'SIGKILL');
        } catch {
          return;
        }
        await proc.waitForExit(scaledMs(2_000)).catch(() => undefined);
      }
    },
  };
  return proc;
}

