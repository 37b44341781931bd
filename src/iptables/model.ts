/**
 * The ruleset as data: tables → chains → rules. Everything tpctl puts into
 * iptables is described here first and only then rendered (restore text,
 * firewalld direct.xml), so every output format says exactly the same thing.
 */
import type { IpFamily, PortRange, UidRange } from '../config/types.js';

/** Every chain tpctl creates starts with this; uninstall finds its chains by it. */
export const CHAIN_PREFIX = 'TPCTL_';
/** Every rule tpctl writes carries a comment starting with this. */
export const COMMENT_PREFIX = 'tpctl/';
/** Comment of the rules in built-in chains that jump into tpctl's chains. */
export const JUMP_COMMENT = `${COMMENT_PREFIX}jump`;

export type TableName = 'raw' | 'mangle' | 'nat';
/** Tables in the order they are rendered (the order a packet meets them). */
export const TABLE_ORDER: readonly TableName[] = ['raw', 'mangle', 'nat'];

export interface AddressMatch {
  /** Address with prefix length: `10.0.0.1/32`, `::1/128`. */
  cidr: string;
  negate?: boolean;
}

export interface PortMatch {
  ranges: PortRange[];
  negate?: boolean;
}

export type Target =
  | { kind: 'jump'; chain: string }
  | { kind: 'return' }
  | { kind: 'redirect'; toPort: number }
  | { kind: 'ct-zone'; zone: number }
  | { kind: 'drop' }
  | { kind: 'log'; prefix: string; level: 'debug' };

export interface Rule {
  inInterface?: string;
  outInterface?: string;
  source?: AddressMatch;
  destination?: AddressMatch;
  protocol?: 'tcp' | 'udp';
  /** More than one range is rendered with the multiport match (≤ 15 ports per rule). */
  destinationPorts?: PortMatch;
  sourcePorts?: PortMatch;
  uidOwner?: { range: UidRange; negate?: boolean };
  ctstate?: 'INVALID';
  /** Without the prefix: `outbound: proxy traffic is left alone`. */
  comment: string;
  target: Target;
}

/** A chain tpctl owns (name starts with CHAIN_PREFIX). */
export interface OwnChain {
  name: string;
  rules: Rule[];
}

/** The rule that sends a built-in chain's packets into one of tpctl's chains (inserted first). */
export interface JumpRule {
  builtinChain: 'PREROUTING' | 'OUTPUT';
  target: string;
}

export interface TableRuleset {
  name: TableName;
  chains: OwnChain[];
  jumps: JumpRule[];
}

export interface FamilyRuleset {
  family: IpFamily;
  /** Only tables holding at least one chain; in TABLE_ORDER. */
  tables: TableRuleset[];
}

/** How many ports a multiport match counts a range as (the kernel's limit is 15). */
function multiportCost(r: PortRange): number {
  return r.from === r.to ? 1 : 2;
}

/** Splits port ranges into groups a single multiport match can hold. */
export function chunkForMultiport(ranges: PortRange[]): PortRange[][] {
  const groups: PortRange[][] = [];
  let current: PortRange[] = [];
  let cost = 0;
  for (const r of ranges) {
    const c = multiportCost(r);
    if (cost + c > 15) {
      groups.push(current);
      current = [];
      cost = 0;
    }
    current.push(r);
    cost += c;
  }
  if (current.length > 0) groups.push(current);
  return groups;
}

function portText(r: PortRange): string {
  return r.from === r.to ? String(r.from) : `${r.from}:${r.to}`;
}

function uidText(r: UidRange): string {
  return r.from === r.to ? String(r.from) : `${r.from}-${r.to}`;
}

function portArgs(flag: 'destination' | 'source', m: PortMatch): string[] {
  const neg = m.negate ? ['!'] : [];
  if (m.ranges.length === 1) return [...neg, `--${flag}-port`, portText(m.ranges[0]!)];
  return ['--match', 'multiport', ...neg, `--${flag}-ports`, m.ranges.map(portText).join(',')];
}

function quote(text: string): string {
  // iptables-restore and firewalld both split arguments shell-style; comments and log
  // prefixes are built by tpctl and never contain quotes or backslashes.
  return `"${text}"`;
}

export function targetArgs(t: Target): string[] {
  switch (t.kind) {
    case 'jump':
      return ['--jump', t.chain];
    case 'return':
      return ['--jump', 'RETURN'];
    case 'redirect':
      return ['--jump', 'REDIRECT', '--to-ports', String(t.toPort)];
    case 'ct-zone':
      return ['--jump', 'CT', '--zone', String(t.zone)];
    case 'drop':
      return ['--jump', 'DROP'];
    case 'log':
      return ['--jump', 'LOG', '--log-prefix', quote(t.prefix), '--log-level', t.level];
  }
}

/** The rule's match and target arguments in long-flag form, in a fixed order. */
export function ruleArgs(rule: Rule): string[] {
  const a: string[] = [];
  if (rule.inInterface) a.push('--in-interface', rule.inInterface);
  if (rule.outInterface) a.push('--out-interface', rule.outInterface);
  if (rule.source) a.push(...(rule.source.negate ? ['!'] : []), '--source', rule.source.cidr);
  if (rule.destination) a.push(...(rule.destination.negate ? ['!'] : []), '--destination', rule.destination.cidr);
  if (rule.protocol) a.push('--protocol', rule.protocol);
  if (rule.sourcePorts) a.push(...portArgs('source', rule.sourcePorts));
  if (rule.destinationPorts) a.push(...portArgs('destination', rule.destinationPorts));
  if (rule.uidOwner) {
    a.push('--match', 'owner', ...(rule.uidOwner.negate ? ['!'] : []), '--uid-owner', uidText(rule.uidOwner.range));
  }
  if (rule.ctstate) a.push('--match', 'conntrack', '--ctstate', rule.ctstate);
  a.push('--match', 'comment', '--comment', quote(`${COMMENT_PREFIX}${rule.comment}`));
  a.push(...targetArgs(rule.target));
  return a;
}

/**
 * Marks jump rules in an nft table that tpctl's install created, so uninstall can
 * delete the table again once it is empty (an nft table, unlike a legacy one, can go).
 */
export const CREATED_TABLE_MARK = 'created-table';

/** The jump rule's arguments; `digest` identifies the ruleset it belongs to. */
export function jumpArgs(jump: JumpRule, digest: string, createdTable = false): string[] {
  const comment = `${JUMP_COMMENT} ruleset=${digest}${createdTable ? ` ${CREATED_TABLE_MARK}` : ''}`;
  return ['--match', 'comment', '--comment', quote(comment), '--jump', jump.target];
}

export function isOwnChainName(name: string): boolean {
  return name.startsWith(CHAIN_PREFIX);
}
