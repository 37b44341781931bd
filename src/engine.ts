/** What an engine reports back to the command layer. */
export interface EngineResult {
  /** False when the host already had exactly this installed (or nothing to remove). */
  changed: boolean;
  /** Human-readable lines: what was done, or the dry-run text. */
  lines: string[];
}

/** The engines (iptables, nftables, ebpf): resolveConfig picks one; engineOf reads it from a config. */
export { ENGINE_NAMES, engineOf, type EngineName } from './config/types.js';

// ---- status and verify: what every engine answers ---------------------------------

import type { ConfigFile } from './config/schema.js';
import type { TransparentProxyConfig } from './config/types.js';

/**
 * The decisions an engine counts. Each is a number of connections (TCP) or flows /
 * datagrams (DNS) since install; an engine that cannot see a decision leaves it out.
 */
export const DECISIONS = {
  outbound_redirected: 'outbound TCP connections sent to the outbound listener',
  inbound_redirected: 'inbound TCP connections sent to the inbound listener (and the proxy\'s own to a local address)',
  dns_redirected: 'DNS queries sent to the DNS listener',
  outbound_excluded_port: 'outbound connections left alone: excluded destination port',
  inbound_excluded_port: 'inbound connections left alone: excluded port',
  outbound_excluded_address: 'outbound connections left alone: excluded destination address',
  inbound_excluded_address: 'inbound connections left alone: excluded source address',
  excluded_uid: 'connections and queries left alone: per-uid exclusion',
  proxy_passthrough: "the proxy's own traffic let through",
  no_listener: 'inbound connections to redirect that found no proxy listener (eBPF: refused, the client gets a reset)',
  refused_sockopt: 'socket options refused (EPERM): a routing header or IPv4 source route set by a process other than the proxy',
  refused_egress: 'packets dropped on their way out: source-routed or with a routing header, sent to loopback through another interface, or DNS on a socket connected before the install',
} as const;
export type Decision = keyof typeof DECISIONS;
export type Counters = Partial<Record<Decision, number>>;

/** One thing that differs from what tpctl would install, and how to repair it. */
export interface Finding {
  /** One line: what is wrong. */
  problem: string;
  /** The command that repairs it. */
  repair: string;
}

/** What is installed, as recorded at install time. */
export interface InstallRecord {
  engine: string;
  /** iptables: nft or legacy. */
  backend?: string;
  tpctlVersion: string;
  installedAt: string;
  /** The resolved settings the install used (what status compares the host with). */
  settings: TransparentProxyConfig;
}

export interface EngineStatus {
  /** iptables, ebpf, nftables … */
  engine: string;
  backend?: string;
  /** Undefined when the engine found its objects but no record of the settings. */
  record?: InstallRecord;
  /** The settings as a config file holds them (install --config takes this back). */
  settings?: ConfigFile;
  findings: Finding[];
  counters: Counters;
}

/** Where verify's probes must run for the engine to see them. */
export interface VerifyPlacement {
  /** cgroup v2 directory a redirected process (and the proxy) must be in (eBPF); undefined: any. */
  cgroupPath?: string;
}

export interface StatusQuery {
  /** eBPF bpffs path to look in (default /run/tpctl/bpf). */
  bpffsPath: string;
  iptablesBackend: 'auto' | 'nft' | 'legacy';
}

/**
 * The read-only half of an engine. `status` returns undefined when the engine has
 * nothing installed; it never changes the host. Every engine implements this and is
 * listed in src/commands/status.ts STATUS_ENGINES.
 */
export interface StatusEngine {
  readonly name: string;
  status(q: StatusQuery): Promise<EngineStatus | undefined>;
  /** How verify places its probes for an install this engine reported. */
  verifyPlacement(s: EngineStatus): VerifyPlacement;
}
