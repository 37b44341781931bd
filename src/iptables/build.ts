/**
 * TransparentProxyConfig → FamilyRuleset. The semantics follow Kuma's
 * `pkg/transparentproxy/iptables/builder`, with one structural difference: every
 * built-in chain gets exactly one rule from tpctl (a jump into a TPCTL_ chain) and
 * everything else lives in tpctl's own chains. A RETURN therefore hands the packet
 * back to the built-in chain's remaining (foreign) rules instead of ending the
 * chain, and uninstall has one rule per built-in chain to find.
 */
import type { Cidr, IpFamily, PortRange, TransparentProxyConfig, UidRange } from '../config/types.js';
import { dnsEnabledFor } from '../config/dns.js';
import { ConfigError } from '../errors.js';
import {
  CHAIN_PREFIX,
  chunkForMultiport,
  type FamilyRuleset,
  type JumpRule,
  type OwnChain,
  type Rule,
  type TableName,
  type TableRuleset,
  TABLE_ORDER,
} from './model.js';

export const CHAINS = {
  natPrerouting: `${CHAIN_PREFIX}PREROUTING`,
  natOutput: `${CHAIN_PREFIX}OUTPUT`,
  inbound: `${CHAIN_PREFIX}INBOUND`,
  inboundRedirect: `${CHAIN_PREFIX}INBOUND_REDIRECT`,
  outbound: `${CHAIN_PREFIX}OUTBOUND`,
  outboundRedirect: `${CHAIN_PREFIX}OUTBOUND_REDIRECT`,
  rawPrerouting: `${CHAIN_PREFIX}RAW_PREROUTING`,
  rawOutput: `${CHAIN_PREFIX}RAW_OUTPUT`,
  manglePrerouting: `${CHAIN_PREFIX}MANGLE_PREROUTING`,
} as const;

const DNS_PORT: PortRange = { from: 53, to: 53 };

export interface FamilyAddresses {
  loopback: string;
  /** Envoy's inbound passthrough cluster connects from this address (Kuma: 127.0.0.6 / ::6). */
  passthroughSource: string;
  hostPrefix: number;
}

export const ADDRESSES: Record<IpFamily, FamilyAddresses> = {
  ipv4: { loopback: '127.0.0.1/32', passthroughSource: '127.0.0.6/32', hostPrefix: 32 },
  ipv6: { loopback: '::1/128', passthroughSource: '::6/128', hostPrefix: 128 },
};

function cidrText(c: Cidr): string {
  return `${c.address}/${c.prefixLength}`;
}

function ofFamily(cidrs: Cidr[], family: IpFamily): string[] {
  return cidrs.filter((c) => c.family === family).map(cidrText);
}

/** The resolv.conf nameservers of a family, as host CIDRs. */
export function dnsServersFor(cfg: TransparentProxyConfig, family: IpFamily): string[] {
  const prefix = ADDRESSES[family].hostPrefix;
  return cfg.dns.servers[family].map((s) => `${s}/${prefix}`);
}

/** UDP DNS queries to the DNS listener: every :53, or only to resolv.conf's servers of `family`. */
function dnsRedirectRules(cfg: TransparentProxyConfig, family: IpFamily): Rule[] {
  const target = { kind: 'redirect', toPort: cfg.dns.port } as const;
  const query = { protocol: 'udp' as const, destinationPorts: { ranges: [DNS_PORT] } };
  if (cfg.dns.mode === 'all') return [{ ...query, comment: 'dns: every query to the proxy', target }];
  return dnsServersFor(cfg, family).map((server) => ({
    destination: { cidr: server },
    ...query,
    comment: 'dns: resolv.conf server to the proxy',
    target,
  }));
}

export function proxyUidRange(cfg: TransparentProxyConfig): UidRange {
  return { from: cfg.kumaDpUser.uid, to: cfg.kumaDpUser.uid };
}

function uidExclusionRules(cfg: TransparentProxyConfig): Rule[] {
  const rules: Rule[] = [];
  for (const ex of cfg.outbound.excludePortsForUids) {
    const protocols: Array<'tcp' | 'udp'> = ex.protocol === 'all' ? ['tcp', 'udp'] : [ex.protocol];
    const portGroups: Array<PortRange[] | undefined> = ex.ports.length === 0 ? [undefined] : chunkForMultiport(ex.ports);
    for (const protocol of protocols) {
      for (const ports of portGroups) {
        for (const range of ex.uids) {
          rules.push({
            protocol,
            ...(ports ? { destinationPorts: { ranges: ports } } : {}),
            uidOwner: { range },
            comment: 'output: excluded for this uid',
            target: { kind: 'return' },
          });
        }
      }
    }
  }
  return rules;
}

function natOutputChain(cfg: TransparentProxyConfig, family: IpFamily): OwnChain {
  const uid = proxyUidRange(cfg);
  const rules: Rule[] = [];
  if (cfg.iptablesLogs) {
    rules.push({ comment: 'output: log', target: { kind: 'log', prefix: 'tpctl OUTPUT: ', level: 'debug' } });
  }
  rules.push(...uidExclusionRules(cfg));
  if (dnsEnabledFor(cfg, family)) {
    rules.push({
      protocol: 'udp',
      destinationPorts: { ranges: [DNS_PORT] },
      uidOwner: { range: uid },
      comment: 'dns: the proxy resolves upstream directly',
      target: { kind: 'return' },
    });
    rules.push(...dnsRedirectRules(cfg, family));
    // Kuma (kumahq/kuma#14557, #15401): DNS over TCP goes neither to the DNS listener
    // (UDP only) nor to the outbound listener (which, with passthrough off, resets
    // it); an application's TCP :53 leaves untouched. The proxy's own is not matched:
    // it takes the outbound chain like any other connection of the proxy.
    rules.push({
      protocol: 'tcp',
      destinationPorts: { ranges: [DNS_PORT] },
      uidOwner: { range: uid, negate: true },
      comment: 'dns: tcp queries go out untouched',
      target: { kind: 'return' },
    });
  }
  rules.push({ protocol: 'tcp', comment: 'output: tcp to outbound', target: { kind: 'jump', chain: CHAINS.outbound } });
  return { name: CHAINS.natOutput, rules };
}

function outboundChain(cfg: TransparentProxyConfig, family: IpFamily): OwnChain {
  const addr = ADDRESSES[family];
  const uid = proxyUidRange(cfg);
  const rules: Rule[] = [];
  for (const ports of chunkForMultiport(cfg.outbound.excludePorts)) {
    rules.push({ protocol: 'tcp', destinationPorts: { ranges: ports }, comment: 'outbound: excluded port', target: { kind: 'return' } });
  }
  rules.push({
    source: { cidr: addr.passthroughSource },
    outInterface: 'lo',
    comment: 'outbound: inbound passthrough from the proxy',
    target: { kind: 'return' },
  });
  if (cfg.inbound.enabled) {
    rules.push({
      outInterface: 'lo',
      destination: { cidr: addr.loopback, negate: true },
      protocol: 'tcp',
      uidOwner: { range: uid },
      comment: 'outbound: proxy to a local address is inbound',
      target: { kind: 'jump', chain: CHAINS.inboundRedirect },
    });
  }
  rules.push({
    outInterface: 'lo',
    protocol: 'tcp',
    uidOwner: { range: uid, negate: true },
    comment: 'outbound: app to a local address',
    target: { kind: 'return' },
  });
  rules.push({ uidOwner: { range: uid }, comment: 'outbound: proxy traffic', target: { kind: 'return' } });
  rules.push({ destination: { cidr: addr.loopback }, comment: 'outbound: localhost', target: { kind: 'return' } });
  for (const cidr of ofFamily(cfg.outbound.excludeIps, family)) {
    rules.push({ destination: { cidr }, comment: 'outbound: excluded address', target: { kind: 'return' } });
  }
  rules.push({ comment: 'outbound: to the proxy', target: { kind: 'jump', chain: CHAINS.outboundRedirect } });
  return { name: CHAINS.outbound, rules };
}

function redirectChain(name: string, port: number, what: string): OwnChain {
  return { name, rules: [{ protocol: 'tcp', comment: `${what}: redirect`, target: { kind: 'redirect', toPort: port } }] };
}

function inboundChain(cfg: TransparentProxyConfig, family: IpFamily): OwnChain {
  const rules: Rule[] = [];
  for (const ports of chunkForMultiport(cfg.inbound.excludePorts)) {
    rules.push({ protocol: 'tcp', destinationPorts: { ranges: ports }, comment: 'inbound: excluded port', target: { kind: 'return' } });
  }
  for (const cidr of ofFamily(cfg.inbound.excludeIps, family)) {
    rules.push({ source: { cidr }, comment: 'inbound: excluded source', target: { kind: 'return' } });
  }
  rules.push({ protocol: 'tcp', comment: 'inbound: to the proxy', target: { kind: 'jump', chain: CHAINS.inboundRedirect } });
  return { name: CHAINS.inbound, rules };
}

function natPreroutingChain(cfg: TransparentProxyConfig, family: IpFamily): OwnChain {
  const rules: Rule[] = [];
  if (cfg.iptablesLogs) {
    rules.push({ comment: 'prerouting: log', target: { kind: 'log', prefix: 'tpctl PREROUTING: ', level: 'debug' } });
  }
  for (const vnet of cfg.vnet.filter((v) => v.cidr.family === family)) {
    // The name becomes one restore-file token; anything that could split it is refused here.
    if (!/^[^\s"'\\#]+$/.test(vnet.iface)) {
      throw new ConfigError(`--vnet: ${JSON.stringify(vnet.iface)} is not an interface name`, {
        hint: 'use IFACE:CIDR, e.g. docker0:172.17.0.0/16',
      });
    }
    if (cfg.dns.mode !== 'off') {
      rules.push({
        inInterface: vnet.iface,
        protocol: 'udp',
        destinationPorts: { ranges: [DNS_PORT] },
        comment: 'vnet: dns to the proxy',
        target: { kind: 'redirect', toPort: cfg.dns.port },
      });
    }
    rules.push({
      inInterface: vnet.iface,
      destination: { cidr: cidrText(vnet.cidr), negate: true },
      protocol: 'tcp',
      comment: 'vnet: outbound to the proxy',
      target: { kind: 'redirect', toPort: cfg.outbound.port },
    });
  }
  if (cfg.inbound.enabled) {
    rules.push({ protocol: 'tcp', comment: 'prerouting: tcp to inbound', target: { kind: 'jump', chain: CHAINS.inbound } });
  }
  return { name: CHAINS.natPrerouting, rules };
}

function natTable(cfg: TransparentProxyConfig, family: IpFamily): TableRuleset {
  const chains: OwnChain[] = [];
  const jumps: JumpRule[] = [];
  const prerouting = natPreroutingChain(cfg, family);
  if (prerouting.rules.length > 0) {
    chains.push(prerouting);
    jumps.push({ builtinChain: 'PREROUTING', target: prerouting.name });
  }
  chains.push(natOutputChain(cfg, family));
  jumps.push({ builtinChain: 'OUTPUT', target: CHAINS.natOutput });
  if (cfg.inbound.enabled) {
    chains.push(inboundChain(cfg, family));
    chains.push(redirectChain(CHAINS.inboundRedirect, cfg.inbound.port, 'inbound'));
  }
  chains.push(outboundChain(cfg, family));
  chains.push(redirectChain(CHAINS.outboundRedirect, cfg.outbound.port, 'outbound'));
  return { name: 'nat', chains, jumps };
}

/**
 * Conntrack zones keep the app↔proxy DNS flow (zone 2) apart from the
 * proxy↔server flow (zone 1), which otherwise can share a 5-tuple and be
 * NATed wrongly. Kuma matches the server's replies with `--destination server`,
 * which a reply never has; tpctl matches them by `--source server`.
 */
function rawTable(cfg: TransparentProxyConfig, family: IpFamily): TableRuleset | undefined {
  if (!cfg.dns.conntrackZoneSplit || !dnsEnabledFor(cfg, family)) return undefined;
  const uid = proxyUidRange(cfg);
  const dnsPort = { from: cfg.dns.port, to: cfg.dns.port };
  const output: Rule[] = [
    {
      protocol: 'udp',
      destinationPorts: { ranges: [DNS_PORT] },
      uidOwner: { range: uid },
      comment: 'dns-zone: proxy to server',
      target: { kind: 'ct-zone', zone: 1 },
    },
    {
      protocol: 'udp',
      sourcePorts: { ranges: [dnsPort] },
      uidOwner: { range: uid },
      comment: 'dns-zone: proxy answers the app',
      target: { kind: 'ct-zone', zone: 2 },
    },
  ];
  const prerouting: Rule[] = [];
  const servers = cfg.dns.mode === 'all' ? [undefined] : dnsServersFor(cfg, family);
  for (const server of servers) {
    output.push({
      ...(server ? { destination: { cidr: server } } : {}),
      protocol: 'udp',
      destinationPorts: { ranges: [DNS_PORT] },
      comment: 'dns-zone: app query',
      target: { kind: 'ct-zone', zone: 2 },
    });
    prerouting.push({
      ...(server ? { source: { cidr: server } } : {}),
      protocol: 'udp',
      sourcePorts: { ranges: [DNS_PORT] },
      comment: 'dns-zone: server reply',
      target: { kind: 'ct-zone', zone: 1 },
    });
  }
  return {
    name: 'raw',
    chains: [
      { name: CHAINS.rawPrerouting, rules: prerouting },
      { name: CHAINS.rawOutput, rules: output },
    ],
    jumps: [
      { builtinChain: 'PREROUTING', target: CHAINS.rawPrerouting },
      { builtinChain: 'OUTPUT', target: CHAINS.rawOutput },
    ],
  };
}

function mangleTable(cfg: TransparentProxyConfig): TableRuleset | undefined {
  if (!cfg.dropInvalidPackets) return undefined;
  return {
    name: 'mangle',
    chains: [
      {
        name: CHAINS.manglePrerouting,
        rules: [{ ctstate: 'INVALID', comment: 'mangle: drop invalid packets', target: { kind: 'drop' } }],
      },
    ],
    jumps: [{ builtinChain: 'PREROUTING', target: CHAINS.manglePrerouting }],
  };
}

export function buildFamilyRuleset(cfg: TransparentProxyConfig, family: IpFamily): FamilyRuleset {
  const byName: Partial<Record<TableName, TableRuleset>> = {
    raw: rawTable(cfg, family),
    mangle: mangleTable(cfg),
    nat: natTable(cfg, family),
  };
  const tables = TABLE_ORDER.map((n) => byName[n]).filter((t): t is TableRuleset => t !== undefined);
  return { family, tables };
}

/** The families tpctl writes rules for (before checking whether the host has IPv6). */
export function configuredFamilies(cfg: TransparentProxyConfig): IpFamily[] {
  return cfg.ipFamilyMode === 'ipv4' ? ['ipv4'] : ['ipv4', 'ipv6'];
}
