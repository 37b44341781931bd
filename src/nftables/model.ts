/**
 * The nftables ruleset as data: one table of tpctl's own, holding named sets (the
 * exclusions) and chains. Everything tpctl gives `nft -f` is described here first
 * and only then rendered (src/nftables/render.ts), so the dry-run text, the golden
 * files and what is applied are one and the same.
 *
 * One model serves both table layouts: an `inet` table (both families in one table,
 * nat in inet needs Linux 5.2), or one `ip` and one `ip6` table on older kernels. A
 * rule or set that concerns one family only says so (`family`); the renderer puts it
 * into that family's table, or into the inet table with a family match.
 */
import type { IpFamily, PortRange, UidRange } from '../config/types.js';
import type { Target } from '../iptables/model.js';

/** The name of every table tpctl creates; uninstall finds them by it (families inet, ip, ip6). */
export const TABLE_NAME = 'tpctl';
/** Every rule tpctl writes carries a comment starting with this (the iptables engine's prefix too). */
export const COMMENT_PREFIX = 'tpctl/';
/** Comment of the one rule in each base chain; the digest identifies the ruleset. */
export const JUMP_COMMENT = `${COMMENT_PREFIX}jump`;

export type TableFamily = 'inet' | 'ip' | 'ip6';
/** inet: one table for both families; split: an ip and an ip6 table. */
export type TableLayout = 'inet' | 'split';

export type SetType = 'inet_service' | 'ipv4_addr' | 'ipv6_addr';

/** A named set with the `interval` flag: ports and port ranges, or addresses and CIDRs. */
export interface NftSet {
  name: string;
  type: SetType;
  /** Rendered elements (`22`, `8000-8100`, `10.0.0.0/8`), sorted and merged. */
  elements: string[];
}

/** Ports: a literal list (rendered inline, as an anonymous set when more than one) or a named set. */
export type PortsValue = { ranges: PortRange[] } | { set: string };
/** Addresses: literal CIDRs/addresses or a named set. */
export type AddrValue = { cidrs: string[] } | { set: string };

export type Match =
  | { kind: 'nfproto'; family: IpFamily }
  | { kind: 'iifname'; name: string }
  | { kind: 'oifname'; name: string }
  | { kind: 'l4proto'; protocols: Array<'tcp' | 'udp'> }
  | { kind: 'addr'; dir: 'saddr' | 'daddr'; family: IpFamily; value: AddrValue; negate?: boolean }
  /** `proto` undefined: `th` (any transport header), after an l4proto match. */
  | { kind: 'port'; dir: 'sport' | 'dport'; proto?: 'tcp' | 'udp'; value: PortsValue; negate?: boolean }
  | { kind: 'skuid'; ranges: UidRange[]; negate?: boolean }
  | { kind: 'ctstate'; state: 'invalid' };

/** What a rule does: the iptables engine's targets, one for one (jump, return, redirect, ct zone, drop, log). */
export type Statement = Target;

export interface NftRule {
  /** Set when the rule concerns one family only (it then goes to that family's table, or gets a family match in inet). */
  family?: IpFamily;
  matches: Match[];
  statement: Statement;
  /** Without the prefix: `outbound: excluded port`. */
  comment: string;
}

export interface BaseHook {
  type: 'nat' | 'filter';
  hook: 'prerouting' | 'output';
  /** Numeric priority (dstnat -100, mangle -150, raw -300): older nft knows no names. */
  priority: number;
}

export interface NftChain {
  name: string;
  /** Base chains hook into the kernel; they hold one jump into a regular chain. */
  base?: BaseHook;
  rules: NftRule[];
}

export interface NftRuleset {
  /** The families the ruleset covers (IPv6 left out with --ip-family-mode ipv4 or on a host without it). */
  families: IpFamily[];
  sets: NftSet[];
  /** Base chains first, then regular chains, each in a fixed order. */
  chains: NftChain[];
}

/** The table(s) a layout uses, with the family each holds rules of (undefined: both). */
export function tablesOf(layout: TableLayout, families: IpFamily[]): Array<{ family: TableFamily; only?: IpFamily }> {
  if (layout === 'inet') return [{ family: 'inet' }];
  return families.map((f) => ({ family: f === 'ipv4' ? 'ip' : 'ip6', only: f }));
}
