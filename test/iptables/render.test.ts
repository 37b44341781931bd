import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import { renderIptablesFirewalld, renderIptablesRuleset } from '../../src/iptables/index.js';
import { expectGolden as expectGoldenIn } from '../fixtures/golden.js';
import { GOLDEN_VARIANTS, defaultConfig, everyFlagConfig } from './fixtures.js';

const GOLDEN_DIR = join(dirname(fileURLToPath(import.meta.url)), 'golden');

const expectGolden = (name: string, actual: string): void => expectGoldenIn(GOLDEN_DIR, name, actual);

describe('renderIptablesRuleset golden files', () => {
  for (const [name, make] of Object.entries(GOLDEN_VARIANTS)) {
    it(`${name}: ipv4 and ipv6`, () => {
      const out = renderIptablesRuleset(make());
      expectGolden(`${name}.ipv4.rules`, out.ipv4);
      expectGolden(`${name}.ipv6.rules`, out.ipv6 ?? '');
    });
  }

  it('ipv4-only: no IPv6 ruleset', () => {
    const cfg = everyFlagConfig();
    cfg.ipFamilyMode = 'ipv4';
    const out = renderIptablesRuleset(cfg);
    expect(out.ipv6).toBeUndefined();
    expectGolden('ipv4-only.ipv4.rules', out.ipv4);
    expect(out.ipv4).toBe(renderIptablesRuleset(everyFlagConfig()).ipv4);
  });

  it('firewalld direct.xml', () => {
    expectGolden('every-flag.direct.xml', renderIptablesFirewalld(everyFlagConfig()));
  });
});

describe('rendering rules', () => {
  const all = () => {
    const out = renderIptablesRuleset(everyFlagConfig());
    return `${out.ipv4}${out.ipv6}`;
  };

  it('is deterministic', () => {
    expect(all()).toBe(all());
  });

  it('uses long flags only', () => {
    for (const line of all().split('\n')) {
      expect(line).not.toMatch(/(^| )-[A-Za-z] /);
    }
  });

  it('comments every rule with tpctl/ and names every chain TPCTL_', () => {
    for (const line of all().split('\n')) {
      if (line.startsWith('--append') || line.startsWith('--insert')) expect(line).toContain('--comment "tpctl/');
      if (line.startsWith(':')) expect(line).toMatch(/^:TPCTL_[A-Z_]+ - \[0:0\]$/);
    }
  });

  it('keeps each family to its own addresses', () => {
    const out = renderIptablesRuleset(everyFlagConfig());
    expect(out.ipv4).not.toMatch(/fd00|::1/);
    expect(out.ipv6).not.toMatch(/\d+\.\d+\.\d+\.\d+/);
  });

  it('redirect-dns with no server of a family writes no DNS rules for it', () => {
    const cfg = defaultConfig();
    cfg.dns.mode = 'resolvconf';
    cfg.dns.servers = { ipv4: ['10.0.0.53'], ipv6: [] };
    const out = renderIptablesRuleset(cfg);
    expect(out.ipv4).toContain('--to-ports 15053');
    expect(out.ipv4).toContain('*raw');
    expect(out.ipv6).not.toContain('15053');
    expect(out.ipv6).not.toContain('*raw');
  });

  it('splits more than 15 excluded ports over multiport rules', () => {
    const cfg = defaultConfig();
    cfg.outbound.excludePortsForUids = [
      { protocol: 'tcp', ports: Array.from({ length: 20 }, (_, i) => ({ from: 100 + i, to: 100 + i })), uids: [{ from: 7, to: 7 }] },
    ];
    const rules = renderIptablesRuleset(cfg).ipv4.split('\n').filter((l) => l.includes('--uid-owner 7 '));
    expect(rules).toHaveLength(2);
    expect(rules[0]).toContain('--destination-ports 100,101,102,103,104,105,106,107,108,109,110,111,112,113,114 ');
  });

  it('refuses a vnet interface name that would split into several arguments', () => {
    const cfg = defaultConfig();
    cfg.vnet = [{ iface: 'eth0 --jump ACCEPT', cidr: { family: 'ipv4', address: '10.0.0.0', prefixLength: 8 } }];
    expect(() => renderIptablesRuleset(cfg)).toThrow(ConfigError);
    expect(() => renderIptablesRuleset(cfg)).toThrow('--vnet: "eth0 --jump ACCEPT" is not an interface name');
  });
});
