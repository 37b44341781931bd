/**
 * The iptables engine against the real kernel, each test in its own network
 * namespace (tpt-ipt-*), for both backends and both families.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { TransparentProxyConfig } from '../../src/config/types.js';
import { renderIptablesFirewalld } from '../../src/iptables/index.js';
import { defaultConfig, everyFlagConfig } from './fixtures.js';
import { probeTraffic } from './traffic-probe.js';
import { buildDist, type EngineOutcome, foreignRules, Netns, runEngine, snapshot, uninstallConfig } from './run-in-netns.js';
import { scaledMs } from '../../src/sandbox/timeout-scale.js';

const BACKENDS = ['nft', 'legacy'] as const;

beforeAll(async () => {
  await buildDist();
}, scaledMs(180_000));

let namespaces: Netns[] = [];
afterEach(async () => {
  for (const ns of namespaces) await ns.destroy();
  namespaces = [];
});

async function freshNetns(): Promise<Netns> {
  const ns = await Netns.create();
  namespaces.push(ns);
  return ns;
}

function withBackend(cfg: TransparentProxyConfig, backend: 'nft' | 'legacy'): TransparentProxyConfig {
  cfg.iptablesBackend = backend;
  return cfg;
}

async function withForeignRules(backend: 'nft' | 'legacy'): Promise<Netns> {
  const ns = await freshNetns();
  await ns.restore(backend, 4, foreignRules(4));
  await ns.restore(backend, 6, foreignRules(6));
  return ns;
}

async function expectOk(p: ReturnType<typeof runEngine>) {
  const out = await p;
  if (!out.ok) throw new Error(`engine failed: ${out.error.message}`);
  return out.result;
}

/** The engine failed with an error of class `name` whose message matches `message` (a substring or a pattern). */
function expectFailure(out: EngineOutcome, name: string, message: string | RegExp): void {
  if (out.ok) throw new Error('expected the engine to fail, it succeeded');
  expect(out.error.name).toBe(name);
  expect(out.error.message).toMatch(message);
}

for (const backend of BACKENDS) {
  describe(`iptables engine (${backend})`, () => {
    it('install writes both families; uninstall leaves the tables byte-identical, foreign rules included', async () => {
      const ns = await withForeignRules(backend);
      const before = await snapshot(ns, backend);

      const res = await expectOk(runEngine(ns, 'install', withBackend(everyFlagConfig(), backend)));
      expect(res.changed).toBe(true);
      const during = await snapshot(ns, backend);
      for (const text of [during.v4, during.v6]) {
        for (const chain of ['TPCTL_OUTPUT', 'TPCTL_OUTBOUND', 'TPCTL_INBOUND', 'TPCTL_RAW_OUTPUT', 'TPCTL_MANGLE_PREROUTING']) {
          expect(text).toContain(`:${chain} - [0:0]`);
        }
        expect(text).toContain('-A FOREIGN_NAT -p tcp -j RETURN');
        expect(text).toMatch(/-A OUTPUT -m comment --comment "tpctl\/jump ruleset=[0-9a-f]+" -j TPCTL_OUTPUT/);
      }
      expect(during.v4).toContain('--to-ports 15001');
      expect(during.v6).toContain('-d fd00::53/128 -p udp -m udp --dport 53');

      const un = await expectOk(runEngine(ns, 'uninstall', uninstallConfig()));
      expect(un.changed).toBe(true);
      expect(await snapshot(ns, backend)).toEqual(before);
    });

    it('a second install with the same settings changes nothing', async () => {
      const ns = await withForeignRules(backend);
      const cfg = withBackend(defaultConfig(), backend);
      expect((await expectOk(runEngine(ns, 'install', cfg))).changed).toBe(true);
      const first = await snapshot(ns, backend);
      const again = await expectOk(runEngine(ns, 'install', cfg));
      expect(again.changed).toBe(false);
      expect(again.lines).toEqual(['ipv4', 'ipv6'].map((f) => `iptables (${backend}) ${f}: already installed, nothing changed`));
      expect(await snapshot(ns, backend)).toEqual(first);
    });

    it('install with different settings replaces ours in place', async () => {
      const ns = await withForeignRules(backend);
      const baseline = await snapshot(ns, backend);
      await expectOk(runEngine(ns, 'install', withBackend(everyFlagConfig(), backend)));

      const other = withBackend(defaultConfig(), backend);
      other.outbound.excludePorts = [{ from: 4444, to: 4444 }];
      const res = await expectOk(runEngine(ns, 'install', other));
      expect(res.changed).toBe(true);
      const replaced = await snapshot(ns, backend);
      // Stale chains (raw, mangle) are gone and the tables equal a fresh install of the new settings.
      expect(replaced.v4).not.toContain('TPCTL_RAW_OUTPUT');
      expect(replaced.v4).toContain('--dport 4444');

      await expectOk(runEngine(ns, 'uninstall', uninstallConfig(backend)));
      expect(await snapshot(ns, backend)).toEqual(baseline);
      await expectOk(runEngine(ns, 'install', other));
      expect(await snapshot(ns, backend)).toEqual(replaced);
    });

    it('a failure after IPv4 was applied leaves both families as they were', async () => {
      const ns = await withForeignRules(backend);
      const before = await snapshot(ns, backend);
      const out = await runEngine(ns, 'install', withBackend(everyFlagConfig(), backend), {
        env: { TPCTL_FAIL_AT: 'after-ipv4' },
      });
      expectFailure(out, 'EngineError', /^install failed: .*; the host was restored to its previous rules$/);
      expect(await snapshot(ns, backend)).toEqual(before);
    });

    it('a failed replace restores the previous tpctl rules', async () => {
      const ns = await withForeignRules(backend);
      await expectOk(runEngine(ns, 'install', withBackend(everyFlagConfig(), backend)));
      const installed = await snapshot(ns, backend);
      const out = await runEngine(ns, 'install', withBackend(defaultConfig(), backend), {
        env: { TPCTL_FAIL_AT: 'after-ipv4' },
      });
      expect(out.ok).toBe(false);
      expect(await snapshot(ns, backend)).toEqual(installed);
    });

    it('uninstall with nothing installed is a no-op', async () => {
      const ns = await withForeignRules(backend);
      const before = await snapshot(ns, backend);
      const res = await expectOk(runEngine(ns, 'uninstall', uninstallConfig()));
      expect(res.changed).toBe(false);
      expect(await snapshot(ns, backend)).toEqual(before);
    });

    it('ipv4-only mode leaves IPv6 alone; inbound disabled writes no inbound chain', async () => {
      const ns = await withForeignRules(backend);
      const before = await snapshot(ns, backend);
      const cfg = withBackend(everyFlagConfig(), backend);
      cfg.ipFamilyMode = 'ipv4';
      cfg.inbound.enabled = false;
      await expectOk(runEngine(ns, 'install', cfg));
      const after = await snapshot(ns, backend);
      expect(after.v6).toEqual(before.v6);
      expect(after.v4).toContain(':TPCTL_OUTBOUND');
      expect(after.v4).not.toContain('TPCTL_INBOUND');
      await expectOk(runEngine(ns, 'uninstall', uninstallConfig()));
      expect(await snapshot(ns, backend)).toEqual(before);
    });

    it('works on a namespace with no rules at all', async () => {
      const ns = await freshNetns();
      const before = await snapshot(ns, backend);
      expect((await expectOk(runEngine(ns, 'install', withBackend(everyFlagConfig(), backend)))).changed).toBe(true);
      // The replacement no longer needs raw and mangle.
      expect((await expectOk(runEngine(ns, 'install', withBackend(defaultConfig(), backend)))).changed).toBe(true);
      if (backend === 'nft') expect((await ns.save('nft', 4)).match(/^\*\w+/gm)).toEqual(['*nat']);
      expect((await expectOk(runEngine(ns, 'install', withBackend(defaultConfig(), backend)))).changed).toBe(false);
      await expectOk(runEngine(ns, 'uninstall', uninstallConfig()));
      const after = await snapshot(ns, backend);
      if (backend === 'nft') {
        // The tables install created are deleted again.
        expect(after).toEqual(before);
      } else {
        // A legacy table, once registered in a namespace, stays (empty).
        expect(`${after.v4}${after.v6}`).not.toMatch(/TPCTL|^-A /m);
      }
    });

    it('a failed install on an empty namespace leaves it empty', async () => {
      const ns = await freshNetns();
      const before = await snapshot(ns, backend);
      const out = await runEngine(ns, 'install', withBackend(everyFlagConfig(), backend), {
        env: { TPCTL_FAIL_AT: 'after-ipv4' },
      });
      expect(out.ok).toBe(false);
      const after = await snapshot(ns, backend);
      if (backend === 'nft') expect(after).toEqual(before);
      else expect(`${after.v4}${after.v6}`).not.toMatch(/TPCTL|^-A /m);
    });
  });
}

describe('iptables engine: backend detection and extras', () => {
  it('auto picks the backend that already holds rules (legacy) and uninstall finds it there', async () => {
    const ns = await freshNetns();
    await ns.restore('legacy', 4, foreignRules(4));
    const cfg = defaultConfig();
    cfg.iptablesBackend = 'auto';
    const res = await expectOk(runEngine(ns, 'install', cfg));
    expect(res.lines).toEqual(['ipv4', 'ipv6'].map((f) => `iptables (legacy) ${f}: installed 13 rules in 6 chains`));
    expect(await ns.save('legacy', 4)).toContain('TPCTL_OUTBOUND');
    expect(await ns.save('nft', 4)).not.toContain('TPCTL');
    await expectOk(runEngine(ns, 'uninstall', uninstallConfig()));
    expect(await ns.save('legacy', 4)).not.toContain('TPCTL');
  });

  it('auto defaults to nft on an empty namespace', async () => {
    const ns = await freshNetns();
    const res = await expectOk(runEngine(ns, 'install', defaultConfig()));
    expect(res.lines).toEqual(['ipv4', 'ipv6'].map((f) => `iptables (nft) ${f}: installed 13 rules in 6 chains`));
    expect(await ns.save('nft', 4)).toContain('TPCTL_OUTBOUND');
    await expectOk(runEngine(ns, 'uninstall', uninstallConfig()));
  });

  it('--store-firewalld writes direct.xml to the given path', async () => {
    const ns = await freshNetns();
    const dir = mkdtempSync(join(tmpdir(), `tpt-ipt-fw-${process.pid}-`));
    try {
      const path = join(dir, 'firewalld', 'direct.xml');
      const cfg = everyFlagConfig();
      cfg.storeFirewalld = true;
      cfg.iptablesBackend = 'nft';
      await expectOk(runEngine(ns, 'install', cfg, { installOptions: { firewalldDirectPath: path } }));
      expect(readFileSync(path, 'utf8')).toBe(renderIptablesFirewalld(cfg));
      await expectOk(runEngine(ns, 'uninstall', uninstallConfig()));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('switching to --ip-family-mode ipv4 removes our IPv6 rules', async () => {
    const ns = await withForeignRules('nft');
    const before = await snapshot(ns, 'nft');
    await expectOk(runEngine(ns, 'install', withBackend(defaultConfig(), 'nft')));
    const cfg = withBackend(defaultConfig(), 'nft');
    cfg.ipFamilyMode = 'ipv4';
    const res = await expectOk(runEngine(ns, 'install', cfg));
    expect(res.changed).toBe(true);
    const after = await snapshot(ns, 'nft');
    expect(after.v6).toEqual(before.v6);
    expect(after.v4).toContain('TPCTL_OUTBOUND');
  });

  it('a reinstall stays on the backend holding our rules; forcing the other one is refused', async () => {
    const ns = await freshNetns();
    await expectOk(runEngine(ns, 'install', withBackend(defaultConfig(), 'nft')));
    // Many foreign legacy rules would make auto pick legacy on a clean host.
    await ns.restore('legacy', 4, foreignRules(4));
    await ns.restore('legacy', 6, foreignRules(6));
    const again = await expectOk(runEngine(ns, 'install', defaultConfig()));
    expect(again.changed).toBe(false);
    expect(again.lines).toEqual(['ipv4', 'ipv6'].map((f) => `iptables (nft) ${f}: already installed, nothing changed`));
    const legacyBefore = await snapshot(ns, 'legacy');
    const forced = await runEngine(ns, 'install', withBackend(defaultConfig(), 'legacy'));
    expectFailure(forced, 'PreflightError', 'iptables-nft');
    expect(await snapshot(ns, 'legacy')).toEqual(legacyBefore);
  });

  it('skips IPv6 with a warning where the namespace has no IPv6', async () => {
    const ns = await withForeignRules('nft');
    // Inside the test namespace only (nsenter): no IPv6 addresses left.
    await ns.exec('sysctl', ['-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.lo.disable_ipv6=1']);
    const before = await snapshot(ns, 'nft');
    const out = await runEngine(ns, 'install', withBackend(defaultConfig(), 'nft'));
    expect(out.ok).toBe(true);
    expect(out.warnings.join('\n')).toContain('no IPv6');
    const after = await snapshot(ns, 'nft');
    expect(after.v6).toEqual(before.v6);
    expect(after.v4).toContain('TPCTL_OUTBOUND');
  });

  it('uninstall removes IPv6 rules even after IPv6 was disabled', async () => {
    const ns = await withForeignRules('legacy');
    const before = await snapshot(ns, 'legacy');
    await expectOk(runEngine(ns, 'install', withBackend(defaultConfig(), 'legacy')));
    await ns.exec('sysctl', ['-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.lo.disable_ipv6=1']);
    await expectOk(runEngine(ns, 'uninstall', uninstallConfig()));
    expect(await snapshot(ns, 'legacy')).toEqual(before);
  });

  it('without CAP_NET_ADMIN install fails with a PrivilegeError and changes nothing', async () => {
    const ns = await withForeignRules('nft');
    const before = await snapshot(ns, 'nft');
    const out = await runEngine(ns, 'install', defaultConfig(), {
      wrapper: ['setpriv', '--bounding-set=-all', '--inh-caps=-all', '--'],
    });
    expectFailure(out, 'PrivilegeError', 'CAP_NET_ADMIN');
    expect(await snapshot(ns, 'nft')).toEqual(before);
  });

  it('dry-run touches nothing', async () => {
    const ns = await withForeignRules('nft');
    const before = await snapshot(ns, 'nft');
    const cfg = everyFlagConfig();
    cfg.dryRun = true;
    const res = await expectOk(runEngine(ns, 'install', cfg));
    expect(res.changed).toBe(false);
    expect(res.lines.join('\n')).toContain('--jump REDIRECT --to-ports 15001');
    expect(await snapshot(ns, 'nft')).toEqual(before);
  });

  it('uninstall --dry-run lists what it would remove and touches nothing', async () => {
    const ns = await withForeignRules('legacy');
    await expectOk(runEngine(ns, 'install', withBackend(defaultConfig(), 'legacy')));
    const installed = await snapshot(ns, 'legacy');
    const res = await expectOk(runEngine(ns, 'uninstall', { ...uninstallConfig(), dryRun: true }));
    expect(res.changed).toBe(false);
    for (const f of ['ipv4', 'ipv6']) expect(res.lines).toContain(`iptables (legacy) ${f}: would remove 6 chains and their jump rules`);
    expect(res.lines).toContain('--delete-chain TPCTL_OUTBOUND');
    expect(await snapshot(ns, 'legacy')).toEqual(installed);
  });

  it('a ruleset the kernel rejects fails before anything changes', async () => {
    const ns = await withForeignRules('nft');
    const before = await snapshot(ns, 'nft');
    const cfg = defaultConfig();
    cfg.iptablesBackend = 'nft';
    cfg.vnet = [{ iface: 'iface-name-longer-than-ifnamsiz', cidr: { family: 'ipv4', address: '10.0.0.0', prefixLength: 8 } }];
    const out = await runEngine(ns, 'install', cfg);
    expect(out.ok).toBe(false);
    if (!out.ok) expect(out.error.message).toMatch(/^install failed: the ipv4 ruleset was rejected: .*; nothing was changed$/);
    expect(await snapshot(ns, 'nft')).toEqual(before);
  });
});

describe('iptables engine: traffic smoke test', () => {
  for (const backend of BACKENDS) {
    it(`${backend}: app TCP and DNS reach the proxy, the proxy uid and localhost are left alone`, async () => {
      const ns = await freshNetns();
      // A veth pair with both ends in the namespace gives it routes to 10.77.0.0/24 and
      // fd00:77::/64; nothing answers there, so only redirected traffic gets a reply.
      await ns.exec('ip', ['link', 'add', 'tpt0', 'type', 'veth', 'peer', 'name', 'tpt1']);
      await ns.exec('ip', ['link', 'set', 'tpt1', 'up']);
      await ns.exec('ip', ['addr', 'add', '10.77.0.1/24', 'dev', 'tpt0']);
      await ns.exec('ip', ['addr', 'add', 'fd00:77::1/64', 'dev', 'tpt0', 'nodad']);
      await ns.exec('ip', ['link', 'set', 'tpt0', 'up']);
      const cfg = withBackend(defaultConfig(), backend);
      cfg.dns.mode = 'all';
      await expectOk(runEngine(ns, 'install', cfg));

      const report = await probeTraffic(ns, cfg.kumaDpUser.uid, {
        tcp: [
          ['10.77.0.9', 80],
          ['fd00:77::9', 80],
          ['127.0.0.1', 8080],
        ],
        udp: [
          ['10.77.0.53', 53],
          ['fd00:77::53', 53],
        ],
      });
      expect(report.app).toEqual({
        '10.77.0.9:80': 'proxy',
        'fd00:77::9:80': 'proxy',
        '127.0.0.1:8080': 'app',
        'udp 10.77.0.53:53': 'dns',
        'udp fd00:77::53:53': 'dns',
      });
      // Replies come back from the address the app asked (conntrack undoes the redirect).
      expect(report.dnsReplyFrom).toEqual({ '10.77.0.53': '10.77.0.53:53', 'fd00:77::53': 'fd00:77::53:53' });
      // Not redirected: to the addresses where nothing answers.
      expect(report.proxyUid['10.77.0.9:80']).toBe('timeout');
      expect(report.proxyUid['fd00:77::9:80']).toBe('timeout');
      expect(report.proxyUid['127.0.0.1:8080']).toBe('app');

      await expectOk(runEngine(ns, 'uninstall', uninstallConfig()));
      const after = await probeTraffic(ns, cfg.kumaDpUser.uid, { tcp: [['10.77.0.9', 80]], udp: [] });
      expect(after.app['10.77.0.9:80']).toBe('timeout');
    });
  }
});

describe('golden rulesets are valid iptables-restore input', () => {
  const goldenDir = join(dirname(fileURLToPath(import.meta.url)), 'golden');
  const files = readdirSync(goldenDir).filter((f) => f.endsWith('.rules'));
  for (const backend of BACKENDS) {
    it(`${backend}: iptables-restore --test accepts every golden file`, async () => {
      const ns = await freshNetns();
      expect(files.length).toBeGreaterThan(8);
      for (const file of files) {
        const text = readFileSync(join(goldenDir, file), 'utf8');
        if (text === '') continue;
        const tool = `${file.includes('.ipv6.') ? 'ip6tables' : 'iptables'}-${backend}-restore`;
        await ns.exec(tool, ['--noflush', '--test'], { input: text });
      }
    });
  }
});
