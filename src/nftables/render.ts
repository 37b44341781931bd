/**
 * NftRuleset → the text `nft -f` reads. Deterministic: the same ruleset and layout
 * always give the same bytes (the golden files compare whole files).
 *
 * Every table is written as `table F tpctl` + `delete table F tpctl` + the full
 * table. Declaring the table first makes the delete valid when it does not exist
 * yet, so one script installs, and replaces an older install of ours, in a single
 * transaction: the kernel sees the old table or the new one, never a mix, and an
 * error anywhere in the file changes nothing. Connections already NATed keep their
 * conntrack entries, so replacing the table does not break them.
 */
import { createHash } from 'node:crypto';
import type { IpFamily, PortRange, UidRange } from '../config/types.js';
import {
  COMMENT_PREFIX,
  type Match,
  type NftChain,
  type NftRule,
  type NftRuleset,
  type NftSet,
  type PortsValue,
  type AddrValue,
  type Statement,
  TABLE_NAME,
  type TableFamily,
  type TableLayout,
  tablesOf,
} from './model.js';

/** Elements per line inside a set, so a 15,000-port set stays readable. */
const ELEMENTS_PER_LINE = 16;

/** Identifies a ruleset; carried by every base chain's jump comment so a reinstall can recognise it. */
export function rulesetDigest(rs: NftRuleset, layout: TableLayout): string {
  return createHash('sha256').update(JSON.stringify({ layout, rs })).digest('hex').slice(0, 12);
}

function list(items: string[]): string {
  return items.length === 1 ? items[0]! : `{ ${items.join(', ')} }`;
}

function rangeText(r: PortRange | UidRange): string {
  return r.from === r.to ? String(r.from) : `${r.from}-${r.to}`;
}

/** `10.0.0.1/32` → `10.0.0.1`: nft lists single addresses without a prefix. */
function addrText(cidr: string): string {
  const full = cidr.includes(':') ? '/128' : '/32';
  return cidr.endsWith(full) ? cidr.slice(0, -full.length) : cidr;
}

function valueText(v: PortsValue | AddrValue): string {
  if ('set' in v) return `@${v.set}`;
  if ('ranges' in v) return list(v.ranges.map(rangeText));
  return list(v.cidrs.map(addrText));
}

const op = (negate: boolean | undefined): string => (negate ? '!= ' : '');

function matchText(m: Match): string {
  switch (m.kind) {
    case 'nfproto':
      return `meta nfproto ${m.family}`;
    case 'iifname':
      return `iifname "${m.name}"`;
    case 'oifname':
      return `oifname "${m.name}"`;
    case 'l4proto':
      return `meta l4proto ${list(m.protocols)}`;
    case 'addr':
      return `${m.family === 'ipv4' ? 'ip' : 'ip6'} ${m.dir} ${op(m.negate)}${valueText(m.value)}`;
    case 'port':
      return `${m.proto ?? 'th'} ${m.dir} ${op(m.negate)}${valueText(m.value)}`;
    case 'skuid':
      return `meta skuid ${op(m.negate)}${list(m.ranges.map(rangeText))}`;
    case 'ctstate':
      return `ct state ${m.state}`;
  }
}

function statementText(s: Statement): string {
  switch (s.kind) {
    case 'jump':
      return `jump ${s.chain}`;
    case 'return':
      return 'return';
    case 'redirect':
      return `redirect to :${s.toPort}`;
    case 'ct-zone':
      return `ct zone set ${s.zone}`;
    case 'drop':
      return 'drop';
    case 'log':
      return `log prefix "${s.prefix}" level ${s.level}`;
  }
}

/**
 * A rule's matches as this table needs them: in a one-family table the family
 * match goes (the table says it); in inet a family-tagged rule gets one unless an
 * address match already implies it.
 */
function matchesFor(r: NftRule, only: IpFamily | undefined): Match[] {
  if (only) return r.matches.filter((m) => m.kind !== 'nfproto');
  if (!r.family) return r.matches;
  const implied = r.matches.some((m) => (m.kind === 'addr' && m.family === r.family) || m.kind === 'nfproto');
  return implied ? r.matches : [{ kind: 'nfproto', family: r.family }, ...r.matches];
}

/** The rule's comment as written and as `nft` lists it. */
export function ruleComment(r: NftRule, digest: string, inBaseChain: boolean): string {
  return `${COMMENT_PREFIX}${r.comment}${inBaseChain ? ` ruleset=${digest}` : ''}`;
}

function ruleText(r: NftRule, only: IpFamily | undefined, digest: string, inBaseChain: boolean): string {
  const parts = matchesFor(r, only).map(matchText);
  // Jumps out of base chains carry no counter: the rules they lead to count.
  if (!inBaseChain && r.statement.kind !== 'log') parts.push('counter');
  parts.push(statementText(r.statement));
  parts.push(`comment "${ruleComment(r, digest, inBaseChain)}"`);
  return parts.join(' ');
}

function setFamily(s: NftSet): IpFamily | undefined {
  return s.type === 'ipv4_addr' ? 'ipv4' : s.type === 'ipv6_addr' ? 'ipv6' : undefined;
}

function setLines(s: NftSet): string[] {
  const out = [`\tset ${s.name} {`, `\t\ttype ${s.type}`, '\t\tflags interval'];
  if (s.elements.length <= ELEMENTS_PER_LINE) {
    out.push(`\t\telements = { ${s.elements.join(', ')} }`);
  } else {
    out.push('\t\telements = {');
    for (let i = 0; i < s.elements.length; i += ELEMENTS_PER_LINE) {
      const last = i + ELEMENTS_PER_LINE >= s.elements.length;
      out.push(`\t\t\t${s.elements.slice(i, i + ELEMENTS_PER_LINE).join(', ')}${last ? '' : ','}`);
    }
    out.push('\t\t}');
  }
  out.push('\t}');
  return out;
}

function chainLines(c: NftChain, only: IpFamily | undefined, digest: string): string[] {
  const out = [`\tchain ${c.name} {`];
  if (c.base) out.push(`\t\ttype ${c.base.type} hook ${c.base.hook} priority ${c.base.priority}; policy accept;`);
  for (const r of c.rules) out.push(`\t\t${ruleText(r, only, digest, c.base !== undefined)}`);
  out.push('\t}');
  return out;
}

/** What one table holds: everything for inet (`only` undefined), else the sets and rules of that family. */
export function tableView(rs: NftRuleset, only: IpFamily | undefined): { sets: NftSet[]; chains: NftChain[] } {
  if (!only) return { sets: rs.sets, chains: rs.chains };
  return {
    sets: rs.sets.filter((s) => (setFamily(s) ?? only) === only),
    chains: rs.chains.map((c) => ({ ...c, rules: c.rules.filter((r) => (r.family ?? only) === only) })),
  };
}

/** One table's full definition (`table F tpctl { … }`). */
function tableLines(rs: NftRuleset, family: TableFamily, only: IpFamily | undefined, digest: string): string[] {
  const view = tableView(rs, only);
  const blocks = [...view.sets.map(setLines), ...view.chains.map((c) => chainLines(c, only, digest))];
  const body = blocks.flatMap((b, i) => (i === 0 ? b : ['', ...b]));
  return [`table ${family} ${TABLE_NAME} {`, ...body, '}'];
}

/** The table families a ruleset occupies in a layout. */
export function targetTables(rs: NftRuleset, layout: TableLayout): TableFamily[] {
  return tablesOf(layout, rs.families).map((t) => t.family);
}

/**
 * The script installing `rs` in `layout`, replacing any table of ours in the same
 * families; `stale`: other tables of ours to delete in the same transaction (a
 * family no longer wanted, or the other layout).
 */
export function renderInstallScript(rs: NftRuleset, layout: TableLayout, stale: TableFamily[] = []): string {
  const digest = rulesetDigest(rs, layout);
  const out = [`# tpctl transparent proxy, nftables engine: ruleset ${digest} (${layout} layout)`];
  for (const f of stale) out.push(`delete table ${f} ${TABLE_NAME}`);
  for (const { family, only } of tablesOf(layout, rs.families)) {
    out.push(`table ${family} ${TABLE_NAME}`, `delete table ${family} ${TABLE_NAME}`, ...tableLines(rs, family, only, digest));
  }
  return `${out.join('\n')}\n`;
}

/** The script deleting the given tables of ours (one transaction). */
export function renderRemovalScript(tables: TableFamily[]): string {
  return tables.map((f) => `delete table ${f} ${TABLE_NAME}\n`).join('');
}
