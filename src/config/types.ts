/**
 * The resolved configuration: what flags, config files and defaults add up to after
 * validation. Engines take only this; they never see argv or raw files.
 *
 * Addresses are kept as canonical strings (`10.0.0.1`, `fd00::1`) plus an explicit
 * family, never as booleans for "is IPv6".
 */

import type { Cidr, IpFamily } from '../net/address.js';

export type { Cidr, IpFamily };
export type IpFamilyMode = 'dualstack' | 'ipv4';

/** An inclusive port range; a single port is `{ from: p, to: p }`. 1 ≤ from ≤ to ≤ 65535. */
export interface PortRange {
  from: number;
  to: number;
}

/** An inclusive uid range. */
export interface UidRange {
  from: number;
  to: number;
}

/** One `--exclude-outbound-ports-for-uids` entry: `[tcp|udp:][ports:]uids`. */
export interface UidPortExclusion {
  /** 'all' when no protocol was given (both tcp and udp). */
  protocol: 'tcp' | 'udp' | 'all';
  /** Empty means every port. */
  ports: PortRange[];
  uids: UidRange[];
}

/** One `--vnet IFACE_REGEX:CIDR` entry (traffic from virtual networks such as docker0). */
export interface VirtualNetwork {
  /** Interface name pattern as given (iptables `-i` accepts a `+` suffix wildcard). */
  iface: string;
  cidr: Cidr;
}

export interface ProxyUser {
  uid: number;
  /** Name from /etc/passwd when known. */
  name?: string;
}

export type DnsMode = 'off' | 'resolvconf' | 'all';

export interface DnsConfig {
  /** off; resolvconf = only the nameservers listed in the resolv.conf file; all = every :53. */
  mode: DnsMode;
  port: number;
  /** Nameservers read from `resolvConfPath` (only filled when mode = resolvconf). */
  servers: { ipv4: string[]; ipv6: string[] };
  resolvConfPath: string;
  /** iptables only: put DNS traffic in separate conntrack zones (Kuma's default). */
  conntrackZoneSplit: boolean;
}

export interface EbpfConfig {
  enabled: boolean;
  /** The host's own addresses: required with --ebpf-enabled. */
  instanceIp: { ipv4?: string; ipv6?: string };
  /** Directory holding the *.bpf.o files. */
  programsSourcePath: string;
  /** Where maps, links and the state record are pinned. */
  bpffsPath: string;
  /** cgroup v2 directory the cgroup programs attach to; undefined = the cgroup2 root. */
  cgroupPath?: string;
  /** Interface for the tc ingress program; undefined = the one holding the instance IP. */
  tcAttachIface?: string;
}

export interface RetryConfig {
  /** iptables --wait seconds (xtables lock). */
  wait: number;
  /** iptables --wait-interval microseconds; 0 = iptables' default. */
  waitInterval: number;
  maxRetries: number;
  sleepBetweenRetriesMs: number;
}

export type IptablesBackend = 'auto' | 'nft' | 'legacy';

/** The engines tpctl has; `--engine`, config key `engine`, env TPCTL_ENGINE (`--ebpf-enabled` = ebpf). */
export const ENGINE_NAMES = ['iptables', 'nftables', 'ebpf'] as const;
export type EngineName = (typeof ENGINE_NAMES)[number];

export interface TransparentProxyConfig {
  kumaDpUser: ProxyUser;
  ipFamilyMode: IpFamilyMode;

  inbound: {
    enabled: boolean;
    port: number;
    excludePorts: PortRange[];
    /** Source addresses whose connections reach the app directly. */
    excludeIps: Cidr[];
  };

  outbound: {
    port: number;
    excludePorts: PortRange[];
    /** Destination addresses left alone. */
    excludeIps: Cidr[];
    excludePortsForUids: UidPortExclusion[];
  };

  dns: DnsConfig;

  vnet: VirtualNetwork[];
  dropInvalidPackets: boolean;
  iptablesLogs: boolean;
  storeFirewalld: boolean;
  /** tpctl extension: force an iptables backend; 'auto' detects it. */
  iptablesBackend: IptablesBackend;
  retry: RetryConfig;

  ebpf: EbpfConfig;

  /**
   * The engine resolveConfig chose; `ebpf.enabled` says the same for the eBPF engine.
   * Optional so configs built by hand stay valid: absent means eBPF when
   * `ebpf.enabled`, else iptables (see engineOf).
   */
  engine?: EngineName;

  dryRun: boolean;
  verbose: boolean;
}

/** The engine a resolved configuration selects. */
export function engineOf(cfg: Pick<TransparentProxyConfig, 'engine' | 'ebpf'>): EngineName {
  return cfg.engine ?? (cfg.ebpf.enabled ? 'ebpf' : 'iptables');
}

export interface UninstallConfig {
  dryRun: boolean;
  verbose: boolean;
  ebpf: { enabled: boolean; bpffsPath: string };
  iptablesBackend: IptablesBackend;
}

/** Where engines report progress and warnings; the CLI prints, tests collect. */
export interface Logger {
  info(msg: string): void;
  warn(msg: string): void;
  debug(msg: string): void;
}

export const silentLogger: Logger = { info() {}, warn() {}, debug() {} };
