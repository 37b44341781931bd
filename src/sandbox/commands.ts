/**
 * Bounded commands: on the host (the root network namespace: only for setting the
 * sandbox up and tearing it down) and inside one host of a sandbox.
 */
import { execa } from 'execa';
import type { Sandbox, SandboxHost } from './types.js';
import { scaledMs } from './timeout-scale.js';

export interface CommandResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

const COMMAND_TIMEOUT_MS = 15_000;

/** Runs a command on the host (root netns), bounded; never throws on non-zero exit. */
export async function runCommand(
  argv: string[],
  opts: { env?: Record<string, string>; timeoutMs?: number; input?: string } = {},
): Promise<CommandResult> {
  const [file, ...args] = argv;
  if (!file) throw new Error('runCommand: empty argv');
  const r = await execa(file, args, {
    reject: false,
    timeout: opts.timeoutMs ?? scaledMs(COMMAND_TIMEOUT_MS),
    env: opts.env,
    input: opts.input,
    stripFinalNewline: false,
  });
  return {
    exitCode: typeof r.exitCode === 'number' ? r.exitCode : -1,
    stdout: String(r.stdout ?? ''),
    stderr: String(r.stderr ?? (r.failed && !r.exitCode ? r.message : '')),
    timedOut: Boolean(r.timedOut),
  };
}

/** runCommand that throws on a non-zero exit, with the command and its stderr. */
export async function mustRun(argv: string[], input?: string): Promise<string> {
  const r = await runCommand(argv, { input });
  if (r.exitCode !== 0) {
    throw new Error(`${argv.join(' ')}: ${r.stderr.trim() || `exit ${r.exitCode}${r.timedOut ? ' (timed out)' : ''}`}`);
  }
  return r.stdout;
}

/** Runs a command inside one host of the sandbox (as root, not in the cgroup). */
export function runIn(
  sandbox: Pick<Sandbox, 'netns'>,
  host: SandboxHost,
  argv: string[],
  opts: { env?: Record<string, string>; timeoutMs?: number; input?: string } = {},
): Promise<CommandResult> {
  return runCommand(['nsenter', `--net=/run/netns/${sandbox.netns[host]}`, '--', ...argv], opts);
}

