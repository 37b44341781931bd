/**
 * TransparentProxyConfig → NftRuleset. The semantics are the iptables engine's rule
 * for rule (src/iptables/build.ts, itself Kuma's builder); what differs is the form:
 * exclusions are named interval sets, so a packet costs one set lookup whatever
 * their number, and both families share one table.
 *
 * Every chain is written as a list of rule generators, each run once per family.
 * When a generator gives the same rules for every family they are kept once, for
 * both; otherwise each family's rules are kept tagged with their family. So a rule
 * is family-specific exactly when the iptables engine's IPv4 and IPv6 rulesets differ
 * there (an address, a DNS server list, a vnet of one family).
 */
import type { Cidr, IpFamily, PortRange, TransparentProxyConfig } from '../config/types.js';
import { ConfigError } from '../errors.js';
import { dnsEnabledFor } from '../config/dns.js';
import { ADDRESSES, dnsServersFor, proxyUidRange } from '../iptables/build.js';
import type { Match, NftChain, NftRule, NftRuleset, NftSet, Statement } from './model.js';

export const CHAINS = {
  natPrerouting: 'nat_prerouting',
  natOutput: 'nat_output',
  rawPrerouting: 'raw_prerouting',
  rawOutput: 'raw_output',
  manglePrerouting: 'mangle_prerouting',
  prerouting: 'prerouting',
  output: 'output',
  inbound: 'inbound',
  outbound: 'outbound',
  dnsZonePrerouting: 'dns_zone_prerouting',
  dnsZoneOutput: 'dns_zone_output',
  dropInvalid: 'drop_invalid',
} as const;

export const SETS = {
  outboundPorts: 'outbound_excluded_ports',
  inboundPorts: 'inbound_excluded_ports',
  outboundAddrs: (f: IpFamily) => `outbound_excluded_${f}`,
  inboundAddrs: (f: IpFamily) => `inbound_excluded_${f}`,
} as const;

/** Base-chain priorities, as iptables' tables have them (nft's dstnat, mangle and raw). */
const PRIORITY = { raw: -300, mangle: -150, dstnat: -100 } as const;

const DNS_PORT: PortRange = { from: 53, to: 53 };

type Generator = (family: IpFamily) => NftRule[];

/** Runs a generator for every family; identical results are kept once, others tagged per family. */
function perFamily(families: IpFamily[], gen: Generator): NftRule[] {
  const results = families.map((f) => gen(f));
  const first = JSON.stringify(results[0] ?? []);
  if (results.every((r) => JSON.stringify(r) === first)) return results[0] ?? [];
  return families.flatMap((f, i) => (results[i] ?? []).map((r) => ({ ...r, family: f })));
}

function chainOf(name: string, families: IpFamily[], gens: Generator[]): NftChain {
  return { name, rules: gens.flatMap((g) => perFamily(families, g)) };
}

const rule = (matches: Match[], statement: Statement, comment: string): NftRule => ({ matches, statement, comment });
const tcp: Match = { kind: 'l4proto', protocols: ['tcp'] };
const RETURN: Statement = { kind: 'return' };
const redirect = (toPort: number): Statement => ({ kind: 'redirect', toPort });
const dport = (proto: 'tcp' | 'udp' | undefined, ranges: PortRange[], negate = false): Match => ({
  kind: 'port',
  dir: 'dport',
  ...(proto ? { proto } : {}),
  value: { ranges },
  ...(negate ? { negate } : {}),
});
const addr = (dir: 'saddr' | 'daddr', family: IpFamily, cidrs: string[], negate = false): Match => ({
  kind: 'addr',
  dir,
  family,
  value: { cidrs },
  ...(negate ? { negate } : {}),
});
const proxyUid = (cfg: TransparentProxyConfig, negate = false): Match => ({
  kind: 'skuid',
  ranges: [proxyUidRange(cfg)],
  ...(negate ? { negate } : {}),
});

/** Sorted, with overlapping and adjacent ranges merged: one canonical element list. */
export function mergePortRanges(ranges: PortRange[]): PortRange[] {
  const sorted = [...ranges].sort((a, b) => a.from - b.from || a.to - b.to);
  const out: PortRange[] = [];
  for (const r of sorted) {
    const last = out.at(-1);
    if (last && r.from <= last.to + 1) last.to = Math.max(last.to, r.to);
    else out.push({ ...r });
  }
  return out;
}

function cidrBits(c: Cidr): bigint {
  const bytes = c.family === 'ipv4' ? c.address.split('.').map(Number) : ipv6Bytes(c.address);
  return bytes.reduce((acc, b) => (acc << 8n) | BigInt(b), 0n);
}

function ipv6Bytes(text: string): number[] {
  const [left = '', right] = text.split('::');
  const l = left ? left.split(':') : [];
  const r = right ? right.split(':') : [];
  const groups = right === undefined ? l : [...l, ...Array<string>(8 - l.length - r.length).fill('0'), ...r];
  return groups.flatMap((g) => {
    const v = parseInt(g, 16);
    return [v >> 8, v & 0xff];
  });
}

/**
 * One family's CIDRs, sorted, with every CIDR inside another one dropped (interval
 * sets refuse overlapping elements). Host bits are already clear (config/net.ts).
 */
export function canonicalCidrs(cidrs: Cidr[], family: IpFamily): string[] {
  const width = family === 'ipv4' ? 32 : 128;
  const items = cidrs
    .filter((c) => c.family === family)
    .map((c) => ({ c, start: cidrBits(c), size: 1n << BigInt(width - c.prefixLength) }))
    .sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : a.c.prefixLength - b.c.prefixLength));
  const kept: typeof items = [];
  for (const it of items) {
    const last = kept.at(-1);
    if (last && it.start < last.start + last.size) continue; // inside the previous (sorted by start, widest first)
    kept.push(it);
  }
  return kept.map(({ c }) => (c.prefixLength === width ? c.address : `${c.address}/${c.prefixLength}`));
}

function portElement(r: PortRange): string {
  return r.from === r.to ? String(r.from) : `${r.from}-${r.to}`;
}

function buildSets(cfg: TransparentProxyConfig, families: IpFamily[]): NftSet[] {
  const sets: NftSet[] = [];
  const ports = (name: string, ranges: PortRange[]): void => {
    if (ranges.length > 0) sets.push({ name, type: 'inet_service', elements: mergePortRanges(ranges).map(portElement) });
  };
  const addrs = (name: string, cidrs: Cidr[], f: IpFamily): void => {
    const elements = canonicalCidrs(cidrs, f);
    if (elements.length > 0) sets.push({ name, type: f === 'ipv4' ? 'ipv4_addr' : 'ipv6_addr', elements });
  };
  ports(SETS.outboundPorts, cfg.outbound.excludePorts);
  for (const f of families) addrs(SETS.outboundAddrs(f), cfg.outbound.excludeIps, f);
  if (cfg.inbound.enabled) {
    ports(SETS.inboundPorts, cfg.inbound.excludePorts);
    for (const f of families) addrs(SETS.inboundAddrs(f), cfg.inbound.excludeIps, f);
  }
  return sets;
}

const hasSet = (sets: NftSet[], name: string): boolean => sets.some((s) => s.name === name);

/** UDP DNS queries to the DNS listener: every :53, or only to resolv.conf's servers of the family. */
function dnsRedirect(cfg: TransparentProxyConfig, f: IpFamily): NftRule[] {
  if (!dnsEnabledFor(cfg, f)) return [];
  const query = dport('udp', [DNS_PORT]);
  if (cfg.dns.mode === 'all') return [rule([query], redirect(cfg.dns.port), 'dns: every query to the proxy')];
  return [rule([addr('daddr', f, dnsServersFor(cfg, f)), query], redirect(cfg.dns.port), 'dns: resolv.conf server to the proxy')];
}

function outputChain(cfg: TransparentProxyConfig, families: IpFamily[]): NftChain {
  const gens: Generator[] = [];
  if (cfg.iptablesLogs) gens.push(() => [rule([], { kind: 'log', prefix: 'tpctl OUTPUT: ', level: 'debug' }, 'output: log')]);
  gens.push(() =>
    cfg.outbound.excludePortsForUids.map((ex) => {
      const protocols: Array<'tcp' | 'udp'> = ex.protocol === 'all' ? ['tcp', 'udp'] : [ex.protocol];
      const single = protocols.length === 1 ? protocols[0] : undefined;
      // `tcp dport` implies the protocol; `th dport` (both) and no ports need it said.
      const matches: Match[] = single && ex.ports.length > 0 ? [] : [{ kind: 'l4proto', protocols }];
      if (ex.ports.length > 0) matches.push(dport(single, mergePortRanges(ex.ports)));
      matches.push({ kind: 'skuid', ranges: ex.uids });
      return rule(matches, RETURN, 'output: excluded for this uid');
    }),
  );
  gens.push(
    (f) => (dnsEnabledFor(cfg, f) ? [rule([dport('udp', [DNS_PORT]), proxyUid(cfg)], RETURN, 'dns: the proxy resolves upstream directly')] : []),
    (f) => dnsRedirect(cfg, f),
    // Kuma's TCP :53 rule (kumahq/kuma#15401); see the iptables builder.
    (f) => (dnsEnabledFor(cfg, f) ? [rule([dport('tcp', [DNS_PORT]), proxyUid(cfg, true)], RETURN, 'dns: tcp queries go out untouched')] : []),
  );
  gens.push(() => [rule([tcp], { kind: 'jump', chain: CHAINS.outbound }, 'output: tcp to outbound')]);
  return chainOf(CHAINS.output, families, gens);
}

function outboundChain(cfg: TransparentProxyConfig, families: IpFamily[], sets: NftSet[]): NftChain {
  const lo: Match = { kind: 'oifname', name: 'lo' };
  const gens: Generator[] = [
    () =>
      hasSet(sets, SETS.outboundPorts)
        ? [rule([{ kind: 'port', dir: 'dport', proto: 'tcp', value: { set: SETS.outboundPorts } }], RETURN, 'outbound: excluded port')]
        : [],
    (f) => [rule([lo, addr('saddr', f, [ADDRESSES[f].passthroughSource])], RETURN, 'outbound: inbound passthrough from the proxy')],
  ];
  if (cfg.inbound.enabled) {
    gens.push((f) => [
      rule(
        [lo, addr('daddr', f, [ADDRESSES[f].loopback], true), tcp, proxyUid(cfg)],
        redirect(cfg.inbound.port),
        'outbound: proxy to a local address is inbound',
      ),
    ]);
  }
  gens.push(
    () => [rule([lo, tcp, proxyUid(cfg, true)], RETURN, 'outbound: app to a local address')],
    () => [rule([proxyUid(cfg)], RETURN, 'outbound: proxy traffic')],
    (f) => [rule([addr('daddr', f, [ADDRESSES[f].loopback])], RETURN, 'outbound: localhost')],
    (f) =>
      hasSet(sets, SETS.outboundAddrs(f))
        ? [rule([{ kind: 'addr', dir: 'daddr', family: f, value: { set: SETS.outboundAddrs(f) } }], RETURN, 'outbound: excluded address')]
        : [],
    () => [rule([tcp], redirect(cfg.outbound.port), 'outbound: to the proxy')],
  );
  return chainOf(CHAINS.outbound, families, gens);
}

function inboundChain(cfg: TransparentProxyConfig, families: IpFamily[], sets: NftSet[]): NftChain {
  return chainOf(CHAINS.inbound, families, [
    () =>
      hasSet(sets, SETS.inboundPorts)
        ? [rule([{ kind: 'port', dir: 'dport', proto: 'tcp', value: { set: SETS.inboundPorts } }], RETURN, 'inbound: excluded port')]
        : [],
    (f) =>
      hasSet(sets, SETS.inboundAddrs(f))
        ? [rule([{ kind: 'addr', dir: 'saddr', family: f, value: { set: SETS.inboundAddrs(f) } }], RETURN, 'inbound: excluded source')]
        : [],
    () => [rule([tcp], redirect(cfg.inbound.port), 'inbound: to the proxy')],
  ]);
}

function preroutingChain(cfg: TransparentProxyConfig, families: IpFamily[]): NftChain {
  const gens: Generator[] = [];
  if (cfg.iptablesLogs) gens.push(() => [rule([], { kind: 'log', prefix: 'tpctl PREROUTING: ', level: 'debug' }, 'prerouting: log')]);
  gens.push((f) =>
    cfg.vnet
      .filter((v) => v.cidr.family === f)
      .flatMap((v) => {
        // nft matches a name prefix with `*` where iptables takes `+`; the name is quoted, so refuse what could end the quote.
        if (!/^[A-Za-z0-9_.@:-]+\+?$/.test(v.iface)) {
          throw new ConfigError(`--vnet: ${JSON.stringify(v.iface)} is not an interface name`, { hint: 'use IFACE:CIDR, e.g. docker0:172.17.0.0/16' });
        }
        const iif: Match = { kind: 'iifname', name: v.iface.replace(/\+$/, '*') };
        const rules: NftRule[] = [];
        if (cfg.dns.mode !== 'off') rules.push(rule([iif, dport('udp', [DNS_PORT])], redirect(cfg.dns.port), 'vnet: dns to the proxy'));
        rules.push(
          rule([iif, addr('daddr', f, [`${v.cidr.address}/${v.cidr.prefixLength}`], true), tcp], redirect(cfg.outbound.port), 'vnet: outbound to the proxy'),
        );
        return rules;
      }),
  );
  if (cfg.inbound.enabled) gens.push(() => [rule([tcp], { kind: 'jump', chain: CHAINS.inbound }, 'prerouting: tcp to inbound')]);
  return chainOf(CHAINS.prerouting, families, gens);
}

/**
 * Conntrack zones keep the app↔proxy DNS flow (zone 2) apart from the proxy↔server
 * flow (zone 1), as the iptables engine's raw rules do (see src/iptables/build.ts).
 */
function dnsZoneChains(cfg: TransparentProxyConfig, families: IpFamily[]): NftChain[] {
  if (!cfg.dns.conntrackZoneSplit || !families.some((f) => dnsEnabledFor(cfg, f))) return [];
  const zone = (z: number): Statement => ({ kind: 'ct-zone', zone: z });
  const servers = (dir: 'saddr' | 'daddr', f: IpFamily): Match[] => (cfg.dns.mode === 'all' ? [] : [addr(dir, f, dnsServersFor(cfg, f))]);
  const dnsSport = (port: number): Match => ({ kind: 'port', dir: 'sport', proto: 'udp', value: { ranges: [{ from: port, to: port }] } });
  const when = (f: IpFamily, r: NftRule): NftRule[] => (dnsEnabledFor(cfg, f) ? [r] : []);
  const output: Generator[] = [
    (f) => when(f, rule([dport('udp', [DNS_PORT]), proxyUid(cfg)], zone(1), 'dns-zone: proxy to server')),
    (f) => when(f, rule([dnsSport(cfg.dns.port), proxyUid(cfg)], zone(2), 'dns-zone: proxy answers the app')),
    (f) => when(f, rule([...servers('daddr', f), dport('udp', [DNS_PORT])], zone(2), 'dns-zone: app query')),
  ];
  const prerouting: Generator[] = [
    (f) => when(f, rule([...servers('saddr', f), dnsSport(53)], zone(1), 'dns-zone: server reply')),
  ];
  return [chainOf(CHAINS.dnsZonePrerouting, families, prerouting), chainOf(CHAINS.dnsZoneOutput, families, output)];
}

function jump(families: IpFamily[], chain: string): NftRule {
  // One family only: the other family's packets must not enter tpctl's chains at all.
  const only: Match[] = families.length === 1 ? [{ kind: 'nfproto', family: families[0]! }] : [];
  return rule(only, { kind: 'jump', chain }, 'jump');
}

/** The whole ruleset for the given families (IPv6 dropped by the caller where the host has none). */
export function buildNftRuleset(cfg: TransparentProxyConfig, families: IpFamily[]): NftRuleset {
  const sets = buildSets(cfg, families);
  const regular: NftChain[] = [];
  const base: NftChain[] = [];
  const hook = (name: string, type: 'nat' | 'filter', h: 'prerouting' | 'output', priority: number, target: string): void => {
    base.push({ name, base: { type, hook: h, priority }, rules: [jump(families, target)] });
  };

  const zones = dnsZoneChains(cfg, families);
  if (zones.length > 0) {
    hook(CHAINS.rawPrerouting, 'filter', 'prerouting', PRIORITY.raw, CHAINS.dnsZonePrerouting);
    hook(CHAINS.rawOutput, 'filter', 'output', PRIORITY.raw, CHAINS.dnsZoneOutput);
  }
  if (cfg.dropInvalidPackets) {
    hook(CHAINS.manglePrerouting, 'filter', 'prerouting', PRIORITY.mangle, CHAINS.dropInvalid);
    regular.push({ name: CHAINS.dropInvalid, rules: [rule([{ kind: 'ctstate', state: 'invalid' }], { kind: 'drop' }, 'mangle: drop invalid packets')] });
  }
  const prerouting = preroutingChain(cfg, families);
  if (prerouting.rules.length > 0) {
    hook(CHAINS.natPrerouting, 'nat', 'prerouting', PRIORITY.dstnat, CHAINS.prerouting);
    regular.push(prerouting);
  }
  hook(CHAINS.natOutput, 'nat', 'output', PRIORITY.dstnat, CHAINS.output);
  regular.push(outputChain(cfg, families));
  if (cfg.inbound.enabled) regular.push(inboundChain(cfg, families, sets));
  regular.push(outboundChain(cfg, families, sets));
  regular.push(...zones);
  return { families, sets, chains: [...base, ...regular] };
}
