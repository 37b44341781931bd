/**
 * Running an external tool (iptables-save/restore, nft, ip, systemctl) and collecting
 * its output. node:child_process directly, not execa: execa costs ~14 ms to load and
 * ~10 ms more on its first call, and a real install runs a few tools on every pod
 * start (README: Start-up). What the CLI needs is small: argv (no shell), optional
 * stdin text, all of stdout and stderr, the exit code, a time bound.
 */
import { spawn } from 'node:child_process';

export interface ToolResult {
  /** The exit code; undefined when the tool could not start or was killed by a signal. */
  exitCode: number | undefined;
  stdout: string;
  stderr: string;
  /** Why it did not exit normally: the spawn error (ENOENT…), the signal, or the timeout. */
  failure?: string;
}

export interface ToolOptions {
  /** Written to the tool's stdin, which is then closed (an empty stdin otherwise). */
  input?: string;
  /** Killed (SIGKILL) after this long; default 10 min (iptables-restore of a million rules takes minutes). */
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 600_000;

/** Runs `cmd args`; never rejects: the result says how it ended. */
export function runTool(cmd: string, args: readonly string[], opts: ToolOptions = {}): Promise<ToolResult> {
  return new Promise((resolve) => {
    let child;
    try {
      child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    } catch (e) {
      resolve({ exitCode: undefined, stdout: '', stderr: '', failure: (e as Error).message });
      return;
    }
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let failure: string | undefined;
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    // A tool that exits without reading all of its input (a syntax error on line 1)
    // closes the pipe: EPIPE here is not our failure, its exit code says what happened.
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
    const timer = setTimeout(() => {
      failure = `timed out after ${opts.timeoutMs ?? DEFAULT_TIMEOUT_MS} ms`;
      child.kill('SIGKILL');
    }, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    let started = true;
    child.on('error', (e) => {
      // A spawn error (ENOENT, EACCES) comes with a negative errno as the "exit code".
      if (child.pid === undefined) started = false;
      failure ??= e.message;
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (signal && !failure) failure = `killed by ${signal}`;
      resolve({
        exitCode: started ? (code ?? undefined) : undefined,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        ...(failure ? { failure } : {}),
      });
    });
  });
}

/** Whether the tool ran and exited 0. */
export function succeeded(r: ToolResult): boolean {
  return r.exitCode === 0 && r.failure === undefined;
}
