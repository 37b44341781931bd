/**
 * What the end-to-end suites (conformance, bypass) share: a sandbox per describe block
 * with the cast running and tpctl installed, and the two outcomes every case checks.
 */
import { afterAll, beforeAll, expect, type TestContext } from 'vitest';
import {
  describeCli, engineFlags, isKernelTooOld, runCli, startCast, uninstallFlags, EXTRA_CLIENT_HOSTS,
  type Cast, type EngineName, type TcpProbeResult,
} from '../../src/sandbox/harness.js';
import { createSandbox } from '../../src/sandbox/sandbox.js';
import type { Sandbox } from '../../src/sandbox/types.js';
import { ipOf } from '../../src/sandbox/wire.js';

/** Every engine, with the short tag its sandbox names use; a new engine is one more entry here and in the harness. */
export const ALL_ENGINES: ReadonlyArray<{ engine: EngineName; short: string }> = [
  { engine: 'iptables-nft', short: 'nft' },
  { engine: 'iptables-legacy', short: 'leg' },
  { engine: 'nftables', short: 'nfs' },
  { engine: 'ebpf', short: 'bpf' },
];

/**
 * One sandbox with the cast running and, given an engine and install arguments, tpctl
 * installed; torn down (uninstalled first) in afterAll.
 */
export function useSandbox(name: string, engine?: EngineName, installArgs?: (sb: Sandbox) => string[]) {
  const ctx: { sb?: Sandbox; cast?: Cast; skipReason?: string } = {};
  beforeAll(async () => {
    ctx.sb = await createSandbox({ name, extraClientHosts: EXTRA_CLIENT_HOSTS });
    ctx.cast = await startCast(ctx.sb);
    if (!engine || !installArgs) return;
    const r = await runCli(ctx.sb, ['install', 'transparent-proxy', ...installArgs(ctx.sb), ...engineFlags(engine, ctx.sb)]);
    if (isKernelTooOld(r)) {
      ctx.skipReason = r.stderr.trim();
      return;
    }
    if (r.exitCode !== 0) throw new Error(`install (${engine}) failed: ${describeCli(r)}`);
  });
  afterAll(async () => {
    const sb = ctx.sb;
    if (!sb) return;
    let uninstallFailure = '';
    try {
      if (engine && installArgs && !ctx.skipReason) {
        const r = await runCli(sb, ['uninstall', 'transparent-proxy', ...uninstallFlags(engine, sb)]);
        if (r.exitCode !== 0) uninstallFailure = `uninstall (${engine}) failed: ${describeCli(r)}`;
      }
    } finally {
      await sb.destroy();
    }
    if (uninstallFailure) throw new Error(uninstallFailure);
  });
  return {
    get sb(): Sandbox {
      if (!ctx.sb) throw new Error('sandbox not created (see beforeAll error)');
      return ctx.sb;
    },
    get cast(): Cast {
      if (!ctx.cast) throw new Error('cast not started (see beforeAll error)');
      return ctx.cast;
    },
    skipIfTooOld(t: TestContext): void {
      if (ctx.skipReason) t.skip(`kernel too old: ${ctx.skipReason}`);
    },
  };
}

export function expectProxied(r: Pick<TcpProbeResult, 'reply'>, listener: 'outbound' | 'inbound', origDst: string, peerIp: string): void {
  expect(r.reply, JSON.stringify(r)).toMatchObject({ via: 'proxy', listener, origDst });
  expect(ipOf(r.reply.peer ?? ''), `proxy saw peer ${r.reply.peer}`).toBe(peerIp);
}

export function expectDirect(r: Pick<TcpProbeResult, 'reply'>, via: 'remote' | 'app', local: string): void {
  expect(r.reply, JSON.stringify(r)).toMatchObject({ via, local });
}

/** What `install` prints, line by line, when the engine already holds these exact settings. */
export function noopInstallLines(engine: EngineName): string[] {
  const done = 'transparent proxy already installed with these settings; nothing changed';
  if (engine === 'ebpf') return ['eBPF transparent proxy already installed with these settings', done];
  if (engine === 'nftables') return ['nftables (inet tpctl): already installed, nothing changed', done];
  const backend = engine === 'iptables-nft' ? 'nft' : 'legacy';
  return [`iptables (${backend}) ipv4: already installed, nothing changed`, `iptables (${backend}) ipv6: already installed, nothing changed`, done];
}
