/**
 * Shared by the status / verify / persist end-to-end tests: the engine list (one row
 * per engine), a sandbox with the cast and an install, and the CLI with stdin.
 */
import { afterAll, beforeAll } from 'vitest';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import {
  conformanceFlags, describeCli, distDir, engineFlags, EXTRA_CLIENT_HOSTS, isKernelTooOld, runCli, startCast, uninstallFlags,
  type EngineName,
} from '../../src/sandbox/harness.js';
import { createSandbox } from '../../src/sandbox/sandbox.js';
import { runIn, type CommandResult } from '../../src/sandbox/commands.js';
import type { Sandbox } from '../../src/sandbox/types.js';

export interface OperateEngine {
  engine: EngineName;
  /** Short tag for sandbox names (contains the issue number). */
  tag: string;
}

/** Every engine the operate tests run against. */
export const OPERATE_ENGINES: OperateEngine[] = [
  { engine: 'iptables-nft', tag: 'i8nft' },
  { engine: 'iptables-legacy', tag: 'i8leg' },
  { engine: 'nftables', tag: 'i8xnf' },
  { engine: 'ebpf', tag: 'i8bpf' },
];

/** The real CLI in the mesh host, with stdin. */
export async function cli(sb: Sandbox, args: string[], input?: string, env: Record<string, string> = {}): Promise<CommandResult> {
  const cliPath = join(distDir, 'cli.js');
  if (!existsSync(cliPath)) throw new Error(`${cliPath} missing: build first`);
  return runIn(sb, 'mesh', [process.execPath, cliPath, ...args], {
    env: { ...process.env, ...env } as Record<string, string>,
    timeoutMs: 60_000,
    ...(input !== undefined ? { input } : {}),
  });
}

export interface Installed {
  readonly sb: Sandbox;
  readonly skipReason: string | undefined;
}

/** A sandbox with the cast, installed with the conformance settings; removed in afterAll. */
export function useInstalled(
  e: OperateEngine,
  opts: { name: string; install?: boolean; cast?: boolean; before?: (sb: Sandbox) => Promise<void>; settings?: (sb: Sandbox) => string[] },
): Installed {
  const ctx: { sb?: Sandbox; skip?: string } = {};
  beforeAll(async () => {
    ctx.sb = await createSandbox({ name: opts.name, extraClientHosts: EXTRA_CLIENT_HOSTS });
    await opts.before?.(ctx.sb);
    if (opts.cast !== false) await startCast(ctx.sb);
    if (opts.install === false) return;
    const settings = opts.settings ? opts.settings(ctx.sb) : conformanceFlags(ctx.sb);
    const r = await runCli(ctx.sb, ['install', 'transparent-proxy', ...settings, ...engineFlags(e.engine, ctx.sb)]);
    if (isKernelTooOld(r)) ctx.skip = r.stderr.trim();
    else if (r.exitCode !== 0) throw new Error(`install (${e.engine}) failed: ${describeCli(r)}`);
  });
  afterAll(async () => {
    const sb = ctx.sb;
    if (!sb) return;
    try {
      await runCli(sb, ['uninstall', 'transparent-proxy', ...uninstallFlags(e.engine, sb)]);
    } finally {
      await sb.destroy();
    }
  });
  return {
    get sb(): Sandbox {
      if (!ctx.sb) throw new Error('sandbox not created (see beforeAll error)');
      return ctx.sb;
    },
    get skipReason() {
      return ctx.skip;
    },
  };
}

/**
 * Routes TEST-NET (192.0.2.0/24, 2001:db8::/32) from the mesh host to the client host,
 * which does not forward: what verify sends when redirection is broken dies inside
 * the sandbox. (iptables redirects after routing, so verify needs a route to exist.)
 */
export async function routeTestNetIntoSandbox(sb: Sandbox): Promise<void> {
  for (const argv of [
    ['ip', 'route', 'add', '192.0.2.0/24', 'via', sb.ipv4.client],
    ['ip', '-6', 'route', 'add', '2001:db8::/32', 'via', sb.ipv6.client],
  ]) {
    const r = await runIn(sb, 'mesh', argv);
    if (r.exitCode !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr.trim()}`);
  }
  const fwd = await runIn(sb, 'client', ['sysctl', '-n', 'net.ipv4.ip_forward']);
  if (fwd.stdout.trim() !== '0') throw new Error('sandbox client host forwards IPv4: TEST-NET traffic could leave it');
}

/** Flags that make status look where this engine's install is. */
export function statusFlags(engine: EngineName, sb: Sandbox): string[] {
  if (engine === 'ebpf') return ['--ebpf-bpffs-path', sb.bpffsPath];
  if (engine === 'nftables') return [];
  return ['--iptables-backend', engine === 'iptables-nft' ? 'nft' : 'legacy'];
}

/** The engine name status reports for a test engine (iptables-nft → iptables). */
export function statusEngineName(engine: EngineName): string {
  return engine.startsWith('iptables') ? 'iptables' : engine;
}

export { describeCli };

/** Handle of our rule with this comment in `inet tpctl` CHAIN (`nft -a` prints handles). */
export async function nftRuleHandle(sb: Sandbox, chain: string, comment: string): Promise<string> {
  const r = await runIn(sb, 'mesh', ['nft', '-a', 'list', 'chain', 'inet', 'tpctl', chain]);
  if (r.exitCode !== 0) throw new Error(`nft list chain inet tpctl ${chain}: ${r.stderr.trim()}`);
  const line = r.stdout.split('\n').find((l) => l.includes(`comment "${comment}"`));
  const handle = line && /# handle (\d+)/.exec(line)?.[1];
  if (!handle) throw new Error(`no rule "${comment}" in inet tpctl ${chain}:\n${r.stdout}`);
  return handle;
}
