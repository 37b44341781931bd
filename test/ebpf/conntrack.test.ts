/**
 * SO_ORIGINAL_DST under the eBPF engine when conntrack is on in the network namespace
 * (any firewall with a `ct` match or a nat chain turns it on). The kernel's own
 * getsockopt then succeeds with the address the connection really reached — the
 * outbound listener, since connect4 rewrote it — and the getsockopt program must
 * still answer with the original destination.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  APP_UID, CLIENT_HOSTS, EXTRA_CLIENT_HOSTS, REMOTE_PORTS,
  addForeignNftTables, conformanceFlags, describeCli, engineFlags, probeTcp, runCli, startCast, uninstallFlags,
} from '../../src/sandbox/harness.js';
import { createSandbox } from '../../src/sandbox/sandbox.js';
import type { Sandbox } from '../../src/sandbox/types.js';
import { hostPort } from '../../src/sandbox/wire.js';

describe('eBPF SO_ORIGINAL_DST with conntrack on in the netns', () => {
  let sb: Sandbox | undefined;
  beforeAll(async () => {
    sb = await createSandbox({ name: `tpe2e-i7ct-${process.pid}`, extraClientHosts: EXTRA_CLIENT_HOSTS });
    await startCast(sb);
    await addForeignNftTables(sb); // ct state and nat chains: conntrack tracks every connection
  }, 120_000);
  afterAll(async () => {
    if (!sb) return;
    try {
      await runCli(sb, ['uninstall', 'transparent-proxy', ...uninstallFlags('ebpf', sb)]);
    } finally {
      await sb.destroy();
    }
  });

  it('the proxy recovers the original destination, IPv4 and IPv6', async () => {
    const s = sb!;
    const r = await runCli(s, ['install', 'transparent-proxy', ...conformanceFlags(s), ...engineFlags('ebpf', s)]);
    expect(r.exitCode, describeCli(r)).toBe(0);
    for (const remote of [s.v4(CLIENT_HOSTS.remote), s.v6(CLIENT_HOSTS.remote)]) {
      const p = await probeTcp(s, { host: 'mesh', uid: APP_UID }, remote, REMOTE_PORTS.plain);
      expect(p.reply, JSON.stringify(p)).toMatchObject({ via: 'proxy', listener: 'outbound', origDst: hostPort(remote, REMOTE_PORTS.plain) });
    }
  });
});
