/**
 * The eBPF install as data (cilium/ebpf's "spec" half): which objects and programs
 * are expected, where each program attaches, and what every settings map must
 * hold for a given TransparentProxyConfig. Pure: no libbpf, no filesystem.
 * The "live" half (loader, maps, attach) makes the kernel match this.
 */
import { createHash } from 'node:crypto';
import { dnsEnabledFor } from '../config/dns.js';
import { ConfigError } from '../errors.js';
import type { Cidr, PortRange, TransparentProxyConfig } from '../config/types.js';
import {
  IPPROTO_TCP,
  IPPROTO_UDP,
  TP_DNS_ALL,
  cookieKey,
  tpAddr,
  tpFlowKey,
  type Codec,
  TP_DNS_LISTED,
  TP_DNS_OFF,
  TP_F_DNS4,
  TP_F_DNS6,
  TP_F_INBOUND,
  TP_F_IPV4,
  TP_F_IPV6,
  ip4Key,
  portKey,
  tpConfig,
  tpIp6,
  tpLpm4Key,
  tpLpm6Key,
  tpUidPortKey,
  u32Key,
  u64Value,
  u8Value,
} from './codecs.js';
import { ipv4Bytes, ipv4Text, ipv6Bytes, ipv6Text, maskPrefix } from './ip.js';
import { BPF_F_NO_PREALLOC, BPF_MAP_TYPE } from './libbpf.js';
import { ABI_ENUMS, ABI_STRUCTS, TP_STAT, type AbiExpectations } from './abi.js';
import type { BtfMapDef } from './btf.js';

// ---- maps ------------------------------------------------------------------

export interface MapSpec {
  name: string;
  type: number;
  /** Codecs of the key and value: their C type and size are what maps.h must declare. */
  key: Codec<unknown>;
  value: Codec<unknown>;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  /** map_flags (BPF_F_*). */
  flags: number;
  /** settings maps are written by tpctl; runtime maps only by the programs. */
  role: 'settings' | 'runtime';
}

const m = <K, V>(
  name: string,
  type: number,
  key: Codec<K>,
  value: Codec<V>,
  maxEntries: number,
  role: MapSpec['role'],
  flags = 0,
): MapSpec => ({
  name,
  type,
  key: key as Codec<unknown>,
  value: value as Codec<unknown>,
  keySize: key.size,
  valueSize: value.size,
  maxEntries,
  flags,
  role,
});

const T = BPF_MAP_TYPE;
/** The kernel requires BPF_F_NO_PREALLOC for every LPM trie. */
const LPM_FLAGS = BPF_F_NO_PREALLOC;

/**
 * The map contract, in one table: what bpf/include/maps.h must declare (checked
 * against the objects' BTF by test/ebpf/abi.test.ts and by the loader).
 */
export const MAP_SPECS: readonly MapSpec[] = [
  m('tp_cfg_v1', T.ARRAY, u32Key, tpConfig, 1, 'settings'),
  m('tp_orig_dst_v1', T.LRU_HASH, cookieKey, tpAddr, 65536, 'runtime'),
  m('tp_flow_v1', T.LRU_HASH, tpFlowKey, tpAddr, 65536, 'runtime'),
  m('tp_out_port_v1', T.HASH, portKey, u8Value, 65536, 'settings'),
  m('tp_in_port_v1', T.HASH, portKey, u8Value, 65536, 'settings'),
  m('tp_out_cidr4_v1', T.LPM_TRIE, tpLpm4Key, u8Value, 16384, 'settings', LPM_FLAGS),
  m('tp_out_cidr6_v1', T.LPM_TRIE, tpLpm6Key, u8Value, 16384, 'settings', LPM_FLAGS),
  m('tp_in_cidr4_v1', T.LPM_TRIE, tpLpm4Key, u8Value, 16384, 'settings', LPM_FLAGS),
  m('tp_in_cidr6_v1', T.LPM_TRIE, tpLpm6Key, u8Value, 16384, 'settings', LPM_FLAGS),
  m('tp_uid_excl_v1', T.HASH, tpUidPortKey, u8Value, 65536, 'settings'),
  m('tp_dns_srv4_v1', T.HASH, ip4Key, u8Value, 256, 'settings'),
  m('tp_dns_srv6_v1', T.HASH, tpIp6, u8Value, 256, 'settings'),
  m('tp_listener_v1', T.SOCKMAP, u32Key, u64Value, 2, 'runtime'),
  m('tp_netns_v1', T.ARRAY, u32Key, u64Value, 1, 'settings'),
  m('tp_stats_v1', T.PERCPU_ARRAY, u32Key, u64Value, TP_STAT.TP_STAT_MAX, 'runtime'),
];

/** Every map is pinned by name under the bpffs path (maps.h: LIBBPF_PIN_BY_NAME). */
export const LIBBPF_PIN_BY_NAME = 1;

/** MAP_SPECS as the objects' .maps section must declare them, for abiMismatches(). */
export function expectedMapDefs(): BtfMapDef[] {
  return MAP_SPECS.map((s) => ({
    name: s.name,
    type: s.type,
    keyType: s.key.cType,
    valueType: s.value.cType,
    keySize: s.keySize,
    valueSize: s.valueSize,
    maxEntries: s.maxEntries,
    flags: s.flags,
    pinning: LIBBPF_PIN_BY_NAME,
  }));
}

/** Everything the objects' BTF must record as tpctl expects it: abi.h's enums and structs, maps.h's maps. */
export const ABI_CONTRACT: AbiExpectations = { enums: ABI_ENUMS, structs: ABI_STRUCTS, maps: expectedMapDefs() };

/**
 * The one bound left on a settings map, for per-uid exclusions only: their uid and
 * port ranges multiply (`1000-2000` × 65535 ports), and tpctl builds every key in
 * memory before the kernel sees it. CIDR and port maps have no bound but kernel memory.
 */
export const UID_EXCLUSION_LIMIT = 1 << 24;

/**
 * The size a settings map is created with for `entries` entries: the size the object
 * declares, doubled until the entries fit. Powers of two leave room, so a later
 * reinstall with a few more entries still updates the pinned map in place. Runtime
 * maps (LRU) and the config ARRAY keep the declared size.
 */
export function mapCapacity(spec: MapSpec, entries: number): number {
  if (spec.role !== 'settings' || spec.type === BPF_MAP_TYPE.ARRAY) return spec.maxEntries;
  let capacity = spec.maxEntries;
  while (capacity < entries) capacity *= 2;
  return capacity;
}

/** Capacity of every settings map for the desired contents (by map name). */
export function mapCapacities(maps: readonly DesiredMap[]): Map<string, number> {
  return new Map(maps.map((d) => [d.name, mapCapacity(mapSpec(d.name), d.entries.length)]));
}

export function mapSpec(name: string): MapSpec {
  const s = MAP_SPECS.find((x) => x.name === name);
  if (!s) throw new Error(`unknown map ${name}`);
  return s;
}

/** The state record: a pinned one-entry ARRAY whose value is a NUL-padded JSON blob. */
export const STATE_MAP = { name: 'tp_state_v1', keySize: 4, valueSize: 16384, maxEntries: 1 } as const;

// ---- programs --------------------------------------------------------------

/** cgroup: a pinned cgroup bpf_link; netns: a pinned bpf_link on this network namespace; tc: a clsact filter. */
export type Hook = 'cgroup' | 'netns' | 'tc';

export interface ProgramSpec {
  object: string;
  name: string;
  section: string;
  hook: Hook;
}

const p = (object: string, name: string, section: string, hook: Hook = 'cgroup'): ProgramSpec => ({ object, name, section, hook });

export const PROGRAM_SPECS: readonly ProgramSpec[] = [
  p('sock_addr.bpf.o', 'tp_connect4', 'cgroup/connect4'),
  p('sock_addr.bpf.o', 'tp_connect6', 'cgroup/connect6'),
  p('sock_addr.bpf.o', 'tp_sendmsg4', 'cgroup/sendmsg4'),
  p('sock_addr.bpf.o', 'tp_sendmsg6', 'cgroup/sendmsg6'),
  p('sock_addr.bpf.o', 'tp_recvmsg4', 'cgroup/recvmsg4'),
  p('sock_addr.bpf.o', 'tp_recvmsg6', 'cgroup/recvmsg6'),
  p('sock_addr.bpf.o', 'tp_getpeername4', 'cgroup/getpeername4'),
  p('sock_addr.bpf.o', 'tp_getpeername6', 'cgroup/getpeername6'),
  p('sockops.bpf.o', 'tp_sockops', 'sockops'),
  p('sockops.bpf.o', 'tp_sockops_ino', 'sockops'),
  p('sockopt.bpf.o', 'tp_getsockopt', 'cgroup/getsockopt'),
  p('sockopt.bpf.o', 'tp_setsockopt', 'cgroup/setsockopt'),
  p('egress.bpf.o', 'tp_egress', 'cgroup_skb/egress'),
  p('tc.bpf.o', 'tp_tc_ingress', 'tc', 'tc'),
  p('sk_lookup.bpf.o', 'tp_sk_lookup', 'sk_lookup', 'netns'),
];

/**
 * How sockops tells a listener of tpctl's network namespace (netns-check.ts): by the
 * namespace's cookie or by its inode number. Each has its own sockops program; the
 * objects hold both and the other one is never loaded.
 */
export type NetnsCheck = 'cookie' | 'inode';

export const SOCKOPS_PROGRAM: Readonly<Record<NetnsCheck, string>> = { cookie: 'tp_sockops', inode: 'tp_sockops_ino' };

/** Programs of the objects not to load with `check` (the other check's sockops program). */
export function unusedPrograms(check: NetnsCheck): ReadonlySet<string> {
  return new Set(Object.entries(SOCKOPS_PROGRAM).filter(([k]) => k !== check).map(([, name]) => name));
}

/** The one program attached with tc rather than through a pinned bpf_link. */
export const TC_PROGRAM = 'tp_tc_ingress';

/**
 * Programs attached through a bpf_link pinned at <bpffs>/links/<name>: every hook but
 * tc. Install records, attaches and pins these in order; uninstall unpins them.
 */
export function linkedPrograms(programs: readonly ProgramSpec[]): ProgramSpec[] {
  return programs.filter((x) => x.hook !== 'tc');
}

export const OBJECT_FILES: readonly string[] = [...new Set(PROGRAM_SPECS.map((x) => x.object))];

/**
 * Our tc filter's identity on the clsact ingress hook. Fixed values so uninstall
 * (and a human with `tc filter show`) can find exactly our filter among others.
 * 0x7470 is "tp" in ASCII.
 */
export const TC_HANDLE = 0x7470;
export const TC_PRIORITY = 0x7470;

// ---- desired map contents --------------------------------------------------

export interface MapEntry {
  key: Buffer;
  value: Buffer;
}

export interface DesiredMap {
  name: string;
  entries: MapEntry[];
  /** One line per entry for --dry-run / --verbose. */
  describe: string[];
}

export interface EbpfSpec {
  maps: DesiredMap[];
  /** Programs to attach: every cgroup program, plus the tc and sk_lookup ones when inbound is on. */
  programs: ProgramSpec[];
  inbound: boolean;
  ipv6: boolean;
  netnsCheck: NetnsCheck;
  warnings: string[];
}

const ONE = u8Value.encode(1);

/** `22`, `8080-8081`: ranges as the flags spell them. */
function rangesText(ranges: Array<{ from: number; to: number }>): string[] {
  return ranges.map((r) => (r.from === r.to ? `${r.from}` : `${r.from}-${r.to}`));
}

function expandPorts(ranges: PortRange[], what: string, max: number): number[] {
  const ports = new Set<number>();
  for (const r of ranges) for (let x = r.from; x <= r.to; x++) ports.add(x);
  if (ports.size > max) {
    throw new ConfigError(`${what}: ${ports.size} ports exceed the map capacity of ${max}`);
  }
  return [...ports].sort((a, b) => a - b);
}

function cidrEntries(cidrs: Cidr[], family: 'ipv4' | 'ipv6'): { entries: MapEntry[]; describe: string[] } {
  const seen = new Map<string, MapEntry>();
  const describe: string[] = [];
  for (const c of cidrs) {
    if (c.family !== family) continue;
    const raw = family === 'ipv4' ? ipv4Bytes(c.address) : ipv6Bytes(c.address);
    const addr = maskPrefix(raw, c.prefixLength);
    const key = (family === 'ipv4' ? tpLpm4Key : tpLpm6Key).encode({ prefixLength: c.prefixLength, addr });
    const hex = key.toString('hex');
    if (seen.has(hex)) continue;
    seen.set(hex, { key, value: ONE });
    describe.push(`${family === 'ipv4' ? ipv4Text(addr) : ipv6Text(addr)}/${c.prefixLength}`);
  }
  return { entries: [...seen.values()], describe };
}

function uidExclusions(cfg: TransparentProxyConfig, max: number): { entries: MapEntry[]; describe: string[] } {
  const keys = new Map<string, MapEntry>();
  const describe: string[] = [];
  for (const ex of cfg.outbound.excludePortsForUids) {
    const protos = ex.protocol === 'all' ? [IPPROTO_TCP, IPPROTO_UDP] : [ex.protocol === 'tcp' ? IPPROTO_TCP : IPPROTO_UDP];
    // An empty port list means every port: the programs look up port 0 as the wildcard.
    const ports = ex.ports.length === 0 ? [0] : expandPorts(ex.ports, '--exclude-outbound-ports-for-uids', 65535);
    let uidCount = 0;
    for (const u of ex.uids) uidCount += u.to - u.from + 1;
    const total = keys.size + uidCount * ports.length * protos.length;
    if (total > max) {
      throw new ConfigError(
        `--exclude-outbound-ports-for-uids: expands to ${total} (uid, protocol, port) entries, more than tpctl writes to one eBPF map (${max})`,
        { hint: 'use fewer uids or ports per entry (a rule without ports covers every port in one entry), or the iptables engine' },
      );
    }
    for (const u of ex.uids) {
      for (let uid = u.from; uid <= u.to; uid++) {
        for (const proto of protos) {
          for (const port of ports) {
            const key = tpUidPortKey.encode({ uid, port, proto });
            keys.set(key.toString('hex'), { key, value: ONE });
          }
        }
      }
    }
    const portText = ex.ports.length === 0 ? 'all ports' : rangesText(ex.ports).join(',');
    describe.push(`uids ${rangesText(ex.uids).join(',')} ${ex.protocol} ${portText}`);
  }
  return { entries: [...keys.values()], describe };
}

function portSet(ranges: PortRange[], what: string, max: number): { entries: MapEntry[]; describe: string[] } {
  const ports = expandPorts(ranges, what, max);
  return {
    entries: ports.map((x) => ({ key: portKey.encode(x), value: ONE })),
    describe: rangesText(ranges),
  };
}

function addrSet(addrs: string[], family: 'ipv4' | 'ipv6'): { entries: MapEntry[]; describe: string[] } {
  const seen = new Map<string, MapEntry>();
  for (const a of addrs) {
    const key = family === 'ipv4' ? ip4Key.encode(ipv4Bytes(a)) : tpIp6.encode(ipv6Bytes(a));
    seen.set(key.toString('hex'), { key, value: ONE });
  }
  return { entries: [...seen.values()], describe: addrs };
}

/**
 * The desired state for cfg. `hostHasIpv6` lets the caller turn IPv6 redirection
 * off on a host without IPv6 (a warning says so); pure callers leave it true.
 */
export function buildEbpfSpec(cfg: TransparentProxyConfig, hostHasIpv6 = true, netnsId = 0n, netnsCheck: NetnsCheck = 'cookie'): EbpfSpec {
  const warnings: string[] = [];
  // --store-firewalld and --skip-dns-conntrack-zone-split are warned about (once) by
  // the config layer; these iptables-only options are not.
  if (cfg.vnet.length > 0) warnings.push('--vnet is ignored with --ebpf-enabled');
  if (cfg.dropInvalidPackets) warnings.push('--drop-invalid-packets is ignored with --ebpf-enabled');
  if (cfg.iptablesLogs) warnings.push('--iptables-logs is ignored with --ebpf-enabled');

  let ipv6 = cfg.ipFamilyMode === 'dualstack';
  if (ipv6 && !hostHasIpv6) {
    warnings.push('IPv6 is not available on this host: only IPv4 traffic is redirected');
    ipv6 = false;
  }

  const dnsMode = cfg.dns.mode === 'all' ? TP_DNS_ALL : cfg.dns.mode === 'resolvconf' ? TP_DNS_LISTED : TP_DNS_OFF;
  const flags =
    TP_F_IPV4 |
    (ipv6 ? TP_F_IPV6 : 0) |
    (cfg.inbound.enabled ? TP_F_INBOUND : 0) |
    (dnsEnabledFor(cfg, 'ipv4') ? TP_F_DNS4 : 0) |
    (ipv6 && dnsEnabledFor(cfg, 'ipv6') ? TP_F_DNS6 : 0);
  const ip4 = cfg.ebpf.instanceIp.ipv4;
  const ip6 = cfg.ebpf.instanceIp.ipv6;
  const config = tpConfig.encode({
    proxyUid: cfg.kumaDpUser.uid,
    outboundPort: cfg.outbound.port,
    inboundPort: cfg.inbound.port,
    dnsPort: cfg.dns.port,
    dnsMode,
    flags,
    instanceIp4: ip4 ? ipv4Bytes(ip4) : Buffer.alloc(4),
    instanceIp6: ip6 && ipv6 ? ipv6Bytes(ip6) : Buffer.alloc(16),
  });
  const cfgDescribe = [
    `proxy uid ${cfg.kumaDpUser.uid}, outbound port ${cfg.outbound.port}, inbound port ${cfg.inbound.port}` +
      `${cfg.inbound.enabled ? '' : ' (inbound redirection off)'}, dns port ${cfg.dns.port} (dns ${cfg.dns.mode})`,
    `families: ipv4${ipv6 ? ', ipv6' : ''}; instance ip ${[ip4, ipv6 ? ip6 : undefined].filter(Boolean).join(', ') || 'none'}`,
  ];

  const max = (name: string): number => mapSpec(name).maxEntries;
  const none = { entries: [], describe: [] };
  const out4 = cidrEntries(cfg.outbound.excludeIps, 'ipv4');
  const out6 = ipv6 ? cidrEntries(cfg.outbound.excludeIps, 'ipv6') : none;
  const in4 = cidrEntries(cfg.inbound.excludeIps, 'ipv4');
  const in6 = ipv6 ? cidrEntries(cfg.inbound.excludeIps, 'ipv6') : none;
  const listed = cfg.dns.mode === 'resolvconf';
  const dns4 = addrSet(listed ? cfg.dns.servers.ipv4 : [], 'ipv4');
  const dns6 = addrSet(listed && ipv6 ? cfg.dns.servers.ipv6 : [], 'ipv6');

  const maps: DesiredMap[] = [
    { name: 'tp_cfg_v1', entries: [{ key: u32Key.encode(0), value: config }], describe: cfgDescribe },
    { name: 'tp_out_port_v1', ...portSet(cfg.outbound.excludePorts, '--exclude-outbound-ports', max('tp_out_port_v1')) },
    { name: 'tp_in_port_v1', ...portSet(cfg.inbound.excludePorts, '--exclude-inbound-ports', max('tp_in_port_v1')) },
    { name: 'tp_out_cidr4_v1', ...out4 },
    { name: 'tp_out_cidr6_v1', ...out6 },
    { name: 'tp_in_cidr4_v1', ...in4 },
    { name: 'tp_in_cidr6_v1', ...in6 },
    { name: 'tp_uid_excl_v1', ...uidExclusions(cfg, UID_EXCLUSION_LIMIT) },
    { name: 'tp_dns_srv4_v1', ...dns4 },
    { name: 'tp_dns_srv6_v1', ...dns6 },
    {
      name: 'tp_netns_v1',
      entries: [{ key: u32Key.encode(0), value: u64Value.encode(netnsId) }],
      describe: [netnsId === 0n ? 'cookie (or inode number) of the network namespace install runs in' : `netns ${netnsCheck} ${netnsId}`],
    },
  ];

  const unused = unusedPrograms(netnsCheck);
  const programs = PROGRAM_SPECS.filter((x) => (x.hook === 'cgroup' || cfg.inbound.enabled) && !unused.has(x.name));
  return { maps, programs, inbound: cfg.inbound.enabled, ipv6, netnsCheck, warnings };
}

/** The netns identity (cookie or inode number) a spec writes to tp_netns_v1. */
export function specNetnsCookie(spec: EbpfSpec): bigint {
  const entry = spec.maps.find((x) => x.name === 'tp_netns_v1')?.entries[0];
  return entry ? u64Value.decode(entry.value) : 0n;
}

/** Where things attach, once preflight has resolved the defaults. */
export interface AttachTarget {
  bpffsPath: string;
  cgroupPath: string;
  programsSourcePath: string;
  /** sha256 over the object files: new programs (an upgrade) need a fresh load, not a map update. */
  objectsDigest: string;
  /** Absent when inbound redirection is off. */
  tc?: { iface: string; ifindex: number };
}

/**
 * Identity of an install: same hash ⇒ nothing to do. Covers the map contents and
 * the attach points, so a changed setting is detected even when it only lives in maps.
 */
export function configHash(spec: EbpfSpec, target: AttachTarget): string {
  const h = createHash('sha256');
  h.update(JSON.stringify({ target, programs: spec.programs.map((x) => x.name) }));
  for (const mp of spec.maps) {
    h.update(mp.name);
    const sorted = mp.entries.map((e) => `${e.key.toString('hex')}=${e.value.toString('hex')}`).sort();
    h.update(sorted.join(','));
  }
  return h.digest('hex');
}

/** Two installs can share links (update maps in place) only when they attach the same programs to the same places. */
export function sameAttachment(a: { target: AttachTarget; programs: string[] }, b: { target: AttachTarget; programs: string[] }): boolean {
  return (
    a.target.cgroupPath === b.target.cgroupPath &&
    a.target.bpffsPath === b.target.bpffsPath &&
    a.target.objectsDigest === b.target.objectsDigest &&
    (a.target.tc?.ifindex ?? -1) === (b.target.tc?.ifindex ?? -1) &&
    (a.target.tc?.iface ?? '') === (b.target.tc?.iface ?? '') &&
    a.programs.join(',') === b.programs.join(',')
  );
}

/** --dry-run text: what an install would load, attach and write. Touches nothing. */
export function describeEbpfPlan(cfg: TransparentProxyConfig): string {
  const spec = buildEbpfSpec(cfg);
  const lines: string[] = [];
  lines.push('# eBPF transparent proxy plan');
  lines.push(`objects: ${OBJECT_FILES.map((o) => `${cfg.ebpf.programsSourcePath.replace(/\/$/, '')}/${o}`).join(' ')}`);
  lines.push(`bpffs: ${cfg.ebpf.bpffsPath} (maps pinned by name, links under ${cfg.ebpf.bpffsPath.replace(/\/$/, '')}/links, state in ${STATE_MAP.name})`);
  const cg = cfg.ebpf.cgroupPath ? `cgroup ${cfg.ebpf.cgroupPath}` : 'the root cgroup of the cgroup2 mount';
  for (const prog of spec.programs.filter((x) => x.hook === 'cgroup')) {
    // A plan does not probe the kernel: name both sockops variants (netns-check.ts).
    const alt = prog.name === SOCKOPS_PROGRAM.cookie ? ` (${SOCKOPS_PROGRAM.inode} where sockops lacks bpf_get_netns_cookie)` : '';
    lines.push(`attach ${prog.name}${alt} (${prog.section}) to ${cg} with a pinned bpf_link`);
  }
  if (spec.inbound) {
    const iface = cfg.ebpf.tcAttachIface ?? `the interface holding ${cfg.ebpf.instanceIp.ipv4 ?? cfg.ebpf.instanceIp.ipv6 ?? 'the instance IP'}`;
    lines.push(`attach tp_tc_ingress (tc) to ${iface} ingress (clsact, handle 0x${TC_HANDLE.toString(16)}, priority ${TC_PRIORITY})`);
    lines.push('attach tp_sk_lookup (sk_lookup) to this network namespace with a pinned bpf_link');
  } else {
    lines.push('inbound redirection off: no tc or sk_lookup program');
  }
  for (const mp of spec.maps) {
    if (mp.describe.length === 0) {
      lines.push(`map ${mp.name}: empty`);
      continue;
    }
    lines.push(`map ${mp.name}: ${mp.entries.length} entr${mp.entries.length === 1 ? 'y' : 'ies'}`);
    for (const d of mp.describe) lines.push(`  ${d}`);
  }
  for (const w of spec.warnings) lines.push(`# warning: ${w}`);
  return lines.join('\n');
}
