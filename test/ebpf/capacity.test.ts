/**
 * No fixed ceiling on eBPF exclusions (issue 11): the settings maps are sized before
 * load to what the settings need, so 100,000 excluded CIDRs plus 22,000 excluded ports
 * install and are honoured by real traffic; a reinstall that outgrows the pinned maps
 * replaces the install (maps sized anew) and one that fits updates them in place.
 * Root; a sandbox as in the conformance suite, through the real CLI.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  APP_UID, CLIENT_HOSTS, EXTRA_CLIENT_HOSTS, PROXY_UID, REMOTE_PORTS,
  describeCli, engineFlags, isKernelTooOld, probeTcp, runCli, startCast, uninstallFlags,
} from '../../src/sandbox/harness.js';
import { createSandbox } from '../../src/sandbox/sandbox.js';
import { runIn } from '../../src/sandbox/commands.js';
import type { Sandbox } from '../../src/sandbox/types.js';

const app = { host: 'mesh' as const, uid: APP_UID };

/** `count` /32s in 10.64.0.0/10 (never a sandbox address) with `sampled` put in the middle. */
function cidrs(count: number, sampled: string[]): string[] {
  const out = Array.from({ length: count - sampled.length }, (_, i) => `10.${64 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}/32`);
  out.splice(Math.floor(out.length / 2), 0, ...sampled.map((a) => `${a}/32`));
  return out;
}

describe('eBPF exclusions without a ceiling', () => {
  let sb: Sandbox | undefined;
  let tooOld = '';
  const box = (): Sandbox => {
    if (!sb) throw new Error('sandbox not created (see beforeAll error)');
    return sb;
  };

  async function install(name: string, settings: object): Promise<string> {
    const s = box();
    const file = join(s.tmpDir, `${name}.json`);
    writeFileSync(file, JSON.stringify(settings));
    const r = await runCli(s, ['install', 'transparent-proxy', '--kuma-dp-user', String(PROXY_UID), '--config', file, ...engineFlags('ebpf', s)]);
    if (isKernelTooOld(r)) {
      tooOld = r.stderr.trim();
      return '';
    }
    expect(r.exitCode, describeCli(r)).toBe(0);
    return r.stdout;
  }

  async function maxEntries(map: string): Promise<number> {
    const r = await runIn(box(), 'mesh', ['bpftool', '-j', 'map', 'show', 'pinned', join(box().bpffsPath, map)]);
    expect(r.exitCode, r.stderr).toBe(0);
    return (JSON.parse(r.stdout) as { max_entries: number }).max_entries;
  }

  async function via(host: number, port: number): Promise<string> {
    return (await probeTcp(box(), app, box().v4(host), port)).reply.via;
  }

  beforeAll(async () => {
    sb = await createSandbox({ name: `tpe2e-cap-${process.pid}`, extraClientHosts: EXTRA_CLIENT_HOSTS });
    await startCast(sb);
  });
  afterAll(async () => {
    if (!sb) return;
    try {
      const r = await runCli(sb, ['uninstall', 'transparent-proxy', ...uninstallFlags('ebpf', sb)]);
      expect(r.exitCode, describeCli(r)).toBe(0);
    } finally {
      await sb.destroy();
    }
  });

  it('installs 100,000 excluded CIDRs plus 22,000 excluded ports and honours them', async (t) => {
    const s = box();
    const excludedIp = s.v4(CLIENT_HOSTS.excludedOutboundIp);
    // 22,000 non-adjacent ports, so no range can stand for them, with the remote's excluded port among them.
    const ports = [REMOTE_PORTS.excluded, ...Array.from({ length: 21_999 }, (_, i) => 20_000 + 2 * i)];
    const out = await install('big', { redirect: { outbound: { excludePortsForIPs: cidrs(100_000, [excludedIp]), excludePorts: ports } } });
    if (tooOld) t.skip(tooOld);
    // 100,000 CIDRs + 22,000 ports, plus the few fixed settings entries (config, netns).
    const written = Number(/: (\d+) entries written/.exec(out)?.[1]);
    expect(written, out).toBeGreaterThanOrEqual(122_000);
    expect(written, out).toBeLessThan(122_010);
    expect(await maxEntries('tp_out_cidr4_v1')).toBe(131_072);
    expect(await maxEntries('tp_out_port_v1')).toBe(65_536);

    expect(await via(CLIENT_HOSTS.remote, REMOTE_PORTS.plain)).toBe('proxy');
    expect(await via(CLIENT_HOSTS.excludedOutboundIp, REMOTE_PORTS.plain)).toBe('remote');
    expect(await via(CLIENT_HOSTS.remote, REMOTE_PORTS.excluded)).toBe('remote');
  });

  it('replaces the install when new settings outgrow the pinned maps, and updates in place when they fit', async (t) => {
    const s = box();
    const r = await runCli(s, ['uninstall', 'transparent-proxy', ...uninstallFlags('ebpf', s)]);
    expect(r.exitCode, describeCli(r)).toBe(0);
    const later = s.v4(CLIENT_HOSTS.unlistedDns);

    await install('small', { redirect: { outbound: { excludePortsForIPs: cidrs(10, []) } } });
    if (tooOld) t.skip(tooOld);
    expect(await maxEntries('tp_out_cidr4_v1')).toBe(16_384);
    expect(await via(CLIENT_HOSTS.unlistedDns, REMOTE_PORTS.plain)).toBe('proxy');

    const grown = await install('grown', { redirect: { outbound: { excludePortsForIPs: cidrs(20_000, [later]) } } });
    expect(grown).toContain('the settings need bigger maps (tp_out_cidr4_v1 needs 20000, holds 16384): replacing the existing eBPF install');
    expect(await maxEntries('tp_out_cidr4_v1')).toBe(32_768);
    expect(await via(CLIENT_HOSTS.unlistedDns, REMOTE_PORTS.plain)).toBe('remote');
    expect(await via(CLIENT_HOSTS.remote, REMOTE_PORTS.plain)).toBe('proxy');

    const fits = await install('fits', { redirect: { outbound: { excludePortsForIPs: cidrs(20_001, []) } } });
    expect(fits).toContain('updated settings in place');
    expect(await maxEntries('tp_out_cidr4_v1')).toBe(32_768);
    expect(await via(CLIENT_HOSTS.unlistedDns, REMOTE_PORTS.plain)).toBe('proxy');
  });
});
