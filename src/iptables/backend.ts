/**
 * The iptables binaries: which backend (legacy or nft) to drive, where its
 * tools are, and running them with the xtables-lock retry policy.
 */
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { DEFAULTS } from '../config/defaults.js';
import type { IpFamily, IptablesBackend, Logger, RetryConfig } from '../config/types.js';
import { CommandError, PreflightError } from '../errors.js';
import { findExecutable } from '../host/executables.js';
import { runTool, succeeded } from '../host/run-tool.js';
import { CHAIN_PREFIX } from './model.js';

export type Backend = 'nft' | 'legacy';
export type Tool = 'save' | 'restore';

/** Kuma's defaults; uninstall has no retry flags. */
export const DEFAULT_RETRY: RetryConfig = {
  wait: DEFAULTS.waitSeconds,
  waitInterval: DEFAULTS.waitIntervalMicros,
  maxRetries: DEFAULTS.maxRetries,
  sleepBetweenRetriesMs: DEFAULTS.sleepBetweenRetriesMs,
};

export function toolName(backend: Backend, family: IpFamily, tool: Tool): string {
  return `${family === 'ipv4' ? 'iptables' : 'ip6tables'}-${backend}-${tool}`;
}

export { findExecutable };

export function requireExecutable(name: string): string {
  const p = findExecutable(name);
  if (!p) throw new PreflightError(`iptables: ${name} not found`, { hint: 'install the iptables package' });
  return p;
}

/**
 * Whether this network namespace has IPv6: the kernel has it and some interface
 * holds an IPv6 address (none when disabled with the disable_ipv6 sysctl).
 */
export function hostHasIpv6(ifInet6Path = '/proc/net/if_inet6'): boolean {
  try {
    return readFileSync(ifInet6Path, 'utf8').trim() !== '';
  } catch {
    return false;
  }
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

/** Runs a tool; a non-zero exit becomes a CommandError carrying its stderr. */
export async function run(cmd: string, args: string[], input?: string): Promise<RunResult> {
  const r = await runTool(cmd, args, { input });
  if (!succeeded(r)) {
    const detail = r.stderr || r.stdout || r.failure || `exit code ${r.exitCode}`;
    throw new CommandError([cmd.split('/').pop(), ...args].join(' '), detail);
  }
  return { stdout: r.stdout, stderr: r.stderr };
}

const LOCK_ERROR = /xtables lock|holding the lock|Resource temporarily unavailable/i;

/** One family's tools for one backend. */
export class Tables {
  constructor(
    readonly backend: Backend,
    readonly family: IpFamily,
    private readonly retry: RetryConfig,
    private readonly log: Logger,
  ) {}

  private command(tool: Tool): string {
    return requireExecutable(toolName(this.backend, this.family, tool));
  }

  /** Throws PreflightError when the save or restore tool is missing. */
  check(): void {
    this.command('save');
    this.command('restore');
  }

  /**
   * Full iptables-save output. Never `-t TABLE`: with nft, naming a table that does
   * not exist creates it.
   */
  async save(): Promise<string> {
    return (await run(this.command('save'), [])).stdout;
  }

  private lockArgs(): string[] {
    // --wait 0 would still block on some versions; without it a busy lock fails at once and the retry loop waits.
    const a = this.retry.wait > 0 ? ['--wait', String(this.retry.wait)] : [];
    // iptables-nft ignores the interval and warns about it.
    if (this.backend === 'legacy' && this.retry.waitInterval > 0) a.push('--wait-interval', String(this.retry.waitInterval));
    return a;
  }

  /** `iptables-restore --noflush` (or with --test), retried while the xtables lock is busy. */
  async restore(payload: string, opts: { test?: boolean; flush?: boolean } = {}): Promise<void> {
    const args = [...(opts.flush ? [] : ['--noflush']), ...(opts.test ? ['--test'] : []), ...this.lockArgs()];
    const cmd = this.command('restore');
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

/** The iptables-save output of each family that could be read, keyed by family. */
export type Snapshots = Partial<Record<IpFamily, string>>;

interface BackendSurvey {
  backend: Backend;
  rules: number;
  holdsTpctl: boolean;
  saves: Snapshots;
}

/**
 * The legacy tables this network namespace has, from the file iptables-legacy-save
 * itself reads to find them: when it exists and is empty, the save would print
 * nothing, so it is not run (two processes fewer in every install on an nft host;
 * README: Start-up). Undefined when unreadable (module not loaded): run the save.
 */
export function legacyTableNames(family: IpFamily, procNet = '/proc/net'): string[] | undefined {
  try {
    return readFileSync(`${procNet}/${family === 'ipv4' ? 'ip' : 'ip6'}_tables_names`, 'utf8').split('\n').filter(Boolean);
  } catch {
    return undefined;
  }
}

async function survey(backend: Backend): Promise<BackendSurvey> {
  const result: BackendSurvey = { backend, rules: 0, holdsTpctl: false, saves: {} };
  const families = ['ipv4', 'ipv6'] as const;
  const texts = await Promise.all(
    families.map(async (family) => {
      const cmd = findExecutable(toolName(backend, family, 'save'));
      if (cmd && backend === 'legacy' && legacyTableNames(family)?.length === 0) return '';
      // A backend whose save is missing or fails holds nothing we could build on.
      return cmd ? run(cmd, []).then((r) => r.stdout, () => undefined) : undefined;
    }),
  );
  for (const [i, family] of families.entries()) {
    const text = texts[i];
    if (text === undefined) continue;
    result.saves[family] = text;
    const lines = text.split('\n');
    result.rules += lines.filter((l) => l.startsWith('-A ')).length;
    if (lines.some((l) => l.startsWith(`:${CHAIN_PREFIX}`))) result.holdsTpctl = true;
  }
  return result;
}

/** The backend holding tpctl's chains (either family), if any: an iptables install is present. */
export async function backendHoldingTpctl(): Promise<Backend | undefined> {
  return (await surveyBoth()).find((s) => s.holdsTpctl)?.backend;
}

/**
 * Both backends' surveys, every iptables-save run at once: four short processes that
 * mostly wait on exec and netlink overlap instead of adding up (start-up, issue 11).
 */
async function surveyBoth(): Promise<[BackendSurvey, BackendSurvey]> {
  return Promise.all([survey('nft'), survey('legacy')]);
}

/**
 * Chooses the backend. A backend already holding tpctl's chains wins (a reinstall
 * must replace them, not add a second copy next door); then the forced one; else
 * the one already holding rules (so tpctl's rules sit next to the host's own, as
 * Kuma does); else nft. Returns the chosen backend's saves as read for the choice,
 * so planning starts from them instead of running iptables-save again.
 */
export async function detectBackend(forced: IptablesBackend, log: Logger): Promise<{ backend: Backend; saves: Snapshots }> {
  const surveys = await surveyBoth();
  const chosen = (backend: Backend) => ({ backend, saves: surveys.find((s) => s.backend === backend)?.saves ?? {} });
  const holder = surveys.find((s) => s.holdsTpctl);
  if (forced !== 'auto') {
    if (holder && holder.backend !== forced) {
      throw new PreflightError(`install: tpctl's rules are installed with the iptables-${holder.backend} backend`, {
        hint: `run \`tpctl uninstall transparent-proxy\` first, or use --iptables-backend ${holder.backend}`,
      });
    }
    return chosen(forced);
  }
  if (holder) return chosen(holder.backend);
  const [nft, legacy] = surveys as [BackendSurvey, BackendSurvey];
  const backend: Backend = legacy.rules > nft.rules ? 'legacy' : 'nft';
  log.debug(`iptables backend: ${backend} (rules found: legacy ${legacy.rules}, nft ${nft.rules})`);
  return chosen(backend);
}
