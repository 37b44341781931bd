/**
 * The iptables binaries: which backend (legacy or nft) to drive, where its
 * tools are, and running them with the xtables-lock retry policy.
 */
import { accessSync, constants, existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { execa } from 'execa';
import type { IpFamily, IptablesBackend, Logger, RetryConfig } from '../config/types.js';
import { CommandError, PreflightError } from '../errors.js';

export type Backend = 'nft' | 'legacy';
export type Tool = 'save' | 'restore';

export function toolName(backend: Backend, family: IpFamily, tool: Tool): string {
  return `${family === 'ipv4' ? 'iptables' : 'ip6tables'}-${backend}-${tool}`;
}

// sbin directories are often missing from PATH under sudo or in service units.
const EXTRA_DIRS = ['/usr/sbin', '/sbin', '/usr/local/sbin'];

/** Absolute path of an executable, or undefined. */
export function findExecutable(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter).filter(Boolean), ...EXTRA_DIRS];
  for (const dir of dirs) {
    const p = join(dir, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

export function requireExecutable(name: string): string {
  const p = findExecutable(name);
  if (!p) throw new PreflightError(`iptables: ${name} not found`, { hint: 'install the iptables package' });
  return p;
}

/** Whether the host (this network namespace) has IPv6 at all. */
export function hostHasIpv6(): boolean {
  return existsSync('/proc/net/if_inet6');
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

/** Runs a tool; a non-zero exit becomes a CommandError carrying its stderr. */
export async function run(cmd: string, args: string[], input?: string): Promise<RunResult> {
  const r = await execa(cmd, args, { reject: false, input: input ?? '', stripFinalNewline: false });
  if (r.failed) {
    const detail = r.stderr || r.stdout || (r.exitCode === undefined ? String(r.message) : `exit code ${r.exitCode}`);
    throw new CommandError([cmd.split('/').pop(), ...args].join(' '), detail);
  }
  return { stdout: r.stdout, stderr: r.stderr };
}

const LOCK_ERROR = /xtables lock|holding the lock|Resource temporarily unavailable/i;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** One family's tools for one backend. */
export class Tables {
  constructor(
    readonly backend: Backend,
    readonly family: IpFamily,
    private readonly retry: RetryConfig,
    private readonly log: Logger,
  ) {}

  get saveCommand(): string {
    return requireExecutable(toolName(this.backend, this.family, 'save'));
  }

  get restoreCommand(): string {
    return requireExecutable(toolName(this.backend, this.family, 'restore'));
  }

  /** Throws PreflightError when the tools are missing. */
  check(): void {
    void this.saveCommand;
    void this.restoreCommand;
  }

  /**
   * Full iptables-save output. Never `-t TABLE`: with nft, naming a table that does
   * not exist creates it.
   */
  async save(): Promise<string> {
    return (await run(this.saveCommand, [])).stdout;
  }

  private lockArgs(): string[] {
    const a = ['--wait', String(this.retry.wait)];
    // iptables-nft ignores the interval and warns about it.
    if (this.backend === 'legacy' && this.retry.waitInterval > 0) a.push('--wait-interval', String(this.retry.waitInterval));
    return a;
  }

  /** `iptables-restore --noflush` (or with --test), retried while the xtables lock is busy. */
  async restore(payload: string, opts: { test?: boolean; flush?: boolean } = {}): Promise<void> {
    const args = [...(opts.flush ? [] : ['--noflush']), ...(opts.test ? ['--test'] : []), ...this.lockArgs()];
    const cmd = this.restoreCommand;
    for (let attempt = 0; ; attempt++) {
      try {
        await run(cmd, args, payload);
        return;
      } catch (e) {
        if (!(e instanceof CommandError) || !LOCK_ERROR.test(e.stderr) || attempt >= this.retry.maxRetries) throw e;
        this.log.debug(`${this.family}: xtables lock busy, retrying in ${this.retry.sleepBetweenRetriesMs} ms`);
        await sleep(this.retry.sleepBetweenRetriesMs);
      }
    }
  }
}

function countRules(saveText: string): number {
  return saveText.split('\n').filter((l) => l.startsWith('-A ')).length;
}

async function ruleCount(backend: Backend): Promise<number> {
  let n = 0;
  for (const family of ['ipv4', 'ipv6'] as const) {
    const cmd = findExecutable(toolName(backend, family, 'save'));
    if (!cmd) continue;
    try {
      n += countRules((await run(cmd, [])).stdout);
    } catch {
      // A backend whose save fails holds nothing we could build on.
    }
  }
  return n;
}

/**
 * Chooses the backend: the forced one, else the one already holding rules (so
 * tpctl's rules sit next to the host's own, as Kuma does), else nft.
 */
export async function detectBackend(forced: IptablesBackend, log: Logger): Promise<Backend> {
  if (forced !== 'auto') return forced;
  const legacy = await ruleCount('legacy');
  const nft = await ruleCount('nft');
  const backend: Backend = legacy > nft ? 'legacy' : 'nft';
  log.debug(`iptables backend: ${backend} (rules found: legacy ${legacy}, nft ${nft})`);
  return backend;
}
