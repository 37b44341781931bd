/**
 * `tpctl verify transparent-proxy` in a sandbox, for every engine: passes on a good
 * install (listeners free), fails with a line naming what broke on a damaged one,
 * and falls back to health + counters when the proxy holds the ports. TEST-NET is
 * routed to the sandbox's client host, which does not forward: nothing verify sends
 * can leave the sandbox, even when redirection is broken.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it, type TestContext } from 'vitest';
import { runCommand, runIn } from '../../src/sandbox/commands.js';
import { distDir, startCast } from '../../src/sandbox/harness.js';

/** The bundled bin `tpctl` runs (scripts/bundle.mjs): verify's probe script must be found from it too. */
const BUNDLE = join(distDir, 'tpctl.cjs');
beforeAll(async () => {
  if (existsSync(BUNDLE)) return;
  const r = await runCommand(['node', 'scripts/bundle.mjs'], { timeoutMs: 60_000 });
  if (r.exitCode !== 0) throw new Error(`scripts/bundle.mjs: ${r.stderr.trim()}`);
}, 90_000);
import { cli, describeCli, OPERATE_ENGINES, routeTestNetIntoSandbox, statusFlags, useInstalled } from './operate.js';

for (const e of OPERATE_ENGINES) {
  describe(`verify: ${e.engine}`, () => {
    const s = useInstalled(e, { name: `tpe2e-${e.tag}v-${process.pid}`, cast: false, before: routeTestNetIntoSandbox });
    const skip = (t: TestContext): void => {
      if (s.skipReason) t.skip(`kernel too old: ${s.skipReason}`);
    };
    const verify = () => cli(s.sb, ['verify', 'transparent-proxy', ...statusFlags(e.engine, s.sb)]);

    it('passes on a good install: TEST-NET connections and DNS land on its listeners with their original destinations', async (t) => {
      skip(t);
      const r = await verify();
      expect(r.exitCode, describeCli(r)).toBe(0);
      expect(r.stdout).toMatch(/^ok {3}uid 65534: TCP to 192\.0\.2\.10:80 → the outbound listener, original destination 192\.0\.2\.10:80$/m);
      expect(r.stdout).toMatch(/^ok {3}uid 65534: TCP to \[2001:db8::10\]:80 → the outbound listener, original destination \[2001:db8::10\]:80$/m);
      expect(r.stdout).toMatch(new RegExp(`^ok {3}uid 65534: DNS query to ${s.sb.ipv4.client.replace(/\./g, '\\.')}:53 → the DNS listener$`, 'm'));
      expect(r.stdout).toMatch(/^ok {3}the proxy's uid 5678: TCP to 127\.0\.0\.2:\d+ → the inbound listener, original destination 127\.0\.0\.2:\d+$/m);
      expect(r.stdout.endsWith('\nverify: passed\n'), r.stdout).toBe(true);
      const bundled = await runIn(s.sb, 'mesh', [process.execPath, BUNDLE, 'verify', 'transparent-proxy', ...statusFlags(e.engine, s.sb)], { timeoutMs: 60_000 });
      expect(bundled.exitCode, describeCli(bundled)).toBe(0);
      expect(bundled.stdout.endsWith('\nverify: passed\n'), bundled.stdout).toBe(true);
    });

    it('fails, naming what broke, when outbound IPv4 redirection is damaged; passes again after the repair', async (t) => {
      skip(t);
      const broken =
        e.engine === 'ebpf'
          ? await runIn(s.sb, 'mesh', ['bpftool', 'link', 'detach', 'pinned', `${s.sb.bpffsPath}/links/tp_connect4`])
          : e.engine === 'nftables'
            ? // one table holds both families: take IPv4 TEST-NET out of the outbound chain only
              await runIn(s.sb, 'mesh', ['nft', 'insert', 'rule', 'inet', 'tpctl', 'outbound', 'ip', 'daddr', '192.0.2.0/24', 'return'])
            : await runIn(s.sb, 'mesh', [`iptables-${e.engine === 'iptables-nft' ? 'nft' : 'legacy'}`, '-w', '5', '-t', 'nat', '-D', 'TPCTL_OUTBOUND_REDIRECT', '1']);
      expect(broken.exitCode, broken.stderr).toBe(0);
      const r = await verify();
      expect(r.exitCode, describeCli(r)).toBe(9);
      expect(r.stdout).toMatch(/^FAIL uid 65534: TCP to 192\.0\.2\.10:80: never reached the outbound listener \(.+\): outbound IPv4 redirection is not working$/m);
      expect(r.stdout).toMatch(/^ok {3}uid 65534: TCP to \[2001:db8::10\]:80 → the outbound listener/m);
      // eBPF: without tp_connect4, connected IPv4 DNS and the proxy's local connection fail too.
      expect(r.stdout.endsWith(`\nverify: FAILED (${e.engine === 'ebpf' ? 3 : 1} of 5 checks)\n`), r.stdout).toBe(true);
      const settings = await cli(s.sb, ['status', 'transparent-proxy', '--settings', ...statusFlags(e.engine, s.sb)]);
      expect(settings.exitCode, describeCli(settings)).toBe(0);
      const re = await cli(s.sb, ['install', 'transparent-proxy', '--config', '-'], settings.stdout);
      expect(re.exitCode, describeCli(re)).toBe(0);
      const again = await verify();
      expect(again.exitCode, describeCli(again)).toBe(0);
    });

    it('with the proxy running (ports taken) it says so and checks health and counters instead', async (t) => {
      skip(t);
      await startCast(s.sb);
      const r = await verify();
      expect(r.exitCode, describeCli(r)).toBe(0);
      const lines = r.stdout.split('\n');
      expect(lines, r.stdout).toContain(
        'verify: ports 0.0.0.0:15001 (EADDRINUSE), [::]:15001 (EADDRINUSE), 0.0.0.0:15006 (EADDRINUSE), [::]:15006 (EADDRINUSE), 127.0.0.1:15053/udp (EADDRINUSE) in use (is the proxy running?): no traffic test; checking the install and its counters instead',
      );
      expect(lines, r.stdout).toContain('ok   the install matches its recorded settings');
      expect(r.stdout).toMatch(/^counters: outbound_redirected \d+, inbound_redirected \d+, dns_redirected \d+$/m);
    });
  });
}

for (const e of OPERATE_ENGINES) {
  describe(`verify: ${e.engine}, IPv4 only, no inbound redirection, every DNS query`, () => {
    const s = useInstalled(e, {
      name: `tpe2e-${e.tag}w-${process.pid}`,
      cast: false,
      before: routeTestNetIntoSandbox,
      settings: () => ['--kuma-dp-user', '5678', '--ip-family-mode', 'ipv4', '--redirect-inbound=false', '--redirect-all-dns-traffic', '--exclude-outbound-ports', '80'],
    });

    it("passes: the proxy's connection to a local address is left alone, DNS to TEST-NET lands on the DNS listener", async (t: TestContext) => {
      if (s.skipReason) t.skip(`kernel too old: ${s.skipReason}`);
      const r = await cli(s.sb, ['verify', 'transparent-proxy', ...statusFlags(e.engine, s.sb)]);
      expect(r.exitCode, describeCli(r)).toBe(0);
      // port 80 is excluded: verify picks the next candidate
      expect(r.stdout).toMatch(/^ok {3}uid 65534: TCP to 192\.0\.2\.10:443 → the outbound listener, original destination 192\.0\.2\.10:443$/m);
      expect(r.stdout).not.toMatch(/2001:db8/);
      expect(r.stdout).toMatch(/^ok {3}uid 65534: DNS query to 192\.0\.2\.53:53 → the DNS listener$/m);
      expect(r.stdout).toMatch(/^ok {3}the proxy's uid 5678: TCP to 127\.0\.0\.2:\d+ → its destination directly$/m);
    });
  });
}
