/**
 * The nftables ruleset as data and as the nft script (golden files, whole-file
 * comparison; UPDATE_GOLDEN=1 rewrites them). No root: test/nftables/engine.test.ts
 * feeds every golden file to `nft --check` in a network namespace.
 */
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import { buildNftRuleset, canonicalCidrs, mergePortRanges } from '../../src/nftables/build.js';
import { layoutForKernel, renderNftablesScript } from '../../src/nftables/index.js';
import { renderInstallScript, renderRemovalScript } from '../../src/nftables/render.js';
import { parseTableJson } from '../../src/nftables/nft.js';
import { expectGolden as expectGoldenIn } from '../fixtures/golden.js';
import { defaultConfig, everyFlagConfig } from '../iptables/fixtures.js';
import { GOLDEN_DIR, VARIANTS } from './fixtures.js';

const expectGolden = (name: string, actual: string): void => expectGoldenIn(GOLDEN_DIR, name, actual);

describe('nft script golden files', () => {
  for (const [name, make] of Object.entries(VARIANTS)) {
    it(`${name}: inet layout`, () => {
      expectGolden(`${name}.inet.nft`, renderNftablesScript(make(), 'inet'));
    });
  }
  for (const name of ['every-flag', 'ipv4-only']) {
    it(`${name}: split layout (ip + ip6 tables, kernels before 5.2)`, () => {
      expectGolden(`${name}.split.nft`, renderNftablesScript(VARIANTS[name]!(), 'split'));
    });
  }
});

describe('nft script', () => {
  it('is deterministic: the same settings in another order give the same bytes', () => {
    const a = everyFlagConfig();
    const b = everyFlagConfig();
    b.outbound.excludePorts.reverse();
    b.outbound.excludeIps.reverse();
    b.inbound.excludePorts.reverse();
    expect(renderNftablesScript(b, 'inet')).toBe(renderNftablesScript(a, 'inet'));
  });

  it('replaces our table in one transaction: declare, delete, define', () => {
    const lines = renderNftablesScript(defaultConfig(), 'inet').split('\n');
    expect(lines.slice(1, 4)).toEqual(['table inet tpctl', 'delete table inet tpctl', 'table inet tpctl {']);
  });

  it('deletes stale tables of ours in the same script', () => {
    const cfg = everyFlagConfig();
    cfg.ipFamilyMode = 'ipv4';
    const script = renderInstallScript(buildNftRuleset(cfg, ['ipv4']), 'split', ['ip6']);
    expect(script.split('\n').slice(1, 3)).toEqual(['delete table ip6 tpctl', 'table ip tpctl']);
    expect(script).not.toContain('table ip6 tpctl {');
    expect(renderRemovalScript(['inet', 'ip'])).toBe('delete table inet tpctl\ndelete table ip tpctl\n');
  });

  it('ipv4 mode: the inet table lets IPv6 packets pass without entering our chains', () => {
    const cfg = defaultConfig();
    cfg.ipFamilyMode = 'ipv4';
    const script = renderNftablesScript(cfg, 'inet');
    expect(script).toContain('meta nfproto ipv4 jump output comment');
    expect(script).not.toMatch(/ip6 /);
  });

  it('exclusions are named interval sets whatever their number: one rule each', () => {
    const cfg = defaultConfig();
    cfg.outbound.excludePorts = Array.from({ length: 15_000 }, (_, i) => ({ from: 20_000 + 2 * i, to: 20_000 + 2 * i }));
    const rs = buildNftRuleset(cfg, ['ipv4', 'ipv6']);
    expect(rs.sets).toEqual([expect.objectContaining({ name: 'outbound_excluded_ports', type: 'inet_service' })]);
    expect(rs.sets[0]!.elements).toHaveLength(15_000);
    const outbound = rs.chains.find((c) => c.name === 'outbound')!;
    expect(outbound.rules.filter((r) => r.comment === 'outbound: excluded port')).toHaveLength(1);
  });

  it('a vnet interface name that could end the quoted string is refused', () => {
    const cfg = defaultConfig();
    cfg.vnet = [{ iface: 'eth"0', cidr: { family: 'ipv4', address: '10.0.0.0', prefixLength: 8 } }];
    expect(() => buildNftRuleset(cfg, ['ipv4'])).toThrow(ConfigError);
  });

  it('inet from Linux 5.2, split before', () => {
    expect(layoutForKernel({ major: 5, minor: 2, patch: 0, release: '5.2.0' })).toBe('inet');
    expect(layoutForKernel({ major: 6, minor: 18, patch: 0, release: '6.18.0' })).toBe('inet');
    expect(layoutForKernel({ major: 5, minor: 1, patch: 9, release: '5.1.9' })).toBe('split');
    expect(layoutForKernel({ major: 4, minor: 19, patch: 0, release: '4.19.0' })).toBe('split');
  });
});

describe('set elements', () => {
  it('port ranges are sorted, overlapping and adjacent ones merged', () => {
    expect(mergePortRanges([{ from: 90, to: 100 }, { from: 22, to: 22 }, { from: 95, to: 120 }, { from: 121, to: 121 }, { from: 23, to: 23 }])).toEqual([
      { from: 22, to: 23 },
      { from: 90, to: 121 },
    ]);
  });

  it('CIDRs inside another one are dropped; host prefixes print as addresses', () => {
    const c = (address: string, prefixLength: number, family: 'ipv4' | 'ipv6' = 'ipv4') => ({ family, address, prefixLength });
    expect(canonicalCidrs([c('10.1.0.0', 16), c('10.0.0.0', 8), c('192.168.0.1', 32), c('9.0.0.0', 8), c('fd00::', 8, 'ipv6')], 'ipv4')).toEqual([
      '9.0.0.0/8',
      '10.0.0.0/8',
      '192.168.0.1',
    ]);
    expect(canonicalCidrs([c('fd00:1::', 32, 'ipv6'), c('fd00::', 8, 'ipv6'), c('fe80::1', 128, 'ipv6')], 'ipv6')).toEqual(['fd00::/8', 'fe80::1']);
  });
});

describe('reading our table back', () => {
  it('keeps sets, chains and rule comments from `nft -j list table`', () => {
    const json = JSON.stringify({
      nftables: [
        { metainfo: { version: '1.0.6' } },
        { table: { family: 'inet', name: 'tpctl' } },
        { set: { name: 'outbound_excluded_ports' } },
        { chain: { name: 'nat_output' } },
        { chain: { name: 'output' } },
        { rule: { chain: 'nat_output', comment: 'tpctl/jump ruleset=abc' } },
        { rule: { chain: 'output', comment: 'tpctl/output: tcp to outbound' } },
        { rule: { chain: 'output' } },
      ],
    });
    const t = parseTableJson('inet', json);
    expect(t.sets).toEqual(['outbound_excluded_ports']);
    expect([...t.chains]).toEqual([
      ['nat_output', ['tpctl/jump ruleset=abc']],
      ['output', ['tpctl/output: tcp to outbound', '']],
    ]);
  });
});
