/**
 * `tpctl status` for the nftables engine. Install records the settings and, right
 * after its transaction, each table as the kernel lists it (`nft -s list table`:
 * what tpctl renders for those settings, in nft's own spelling). Status compares
 * today's listing with that one, set by set and rule by rule, after checking that the
 * recorded listing is the one the recorded settings render (ruleset digest); the
 * counters are the `counter` statements of our rules. Read-only: runs `nft list`.
 */
import { toConfigFile } from '../config/to-file.js';
import type { IpFamily, TransparentProxyConfig } from '../config/types.js';
import type { Counters, Decision, EngineStatus, Finding, InstallRecord, StatusEngine } from '../engine.js';
import { hostHasIpv6 } from '../iptables/backend.js';
import { configuredFamilies } from '../iptables/build.js';
import { readRecord, recordPath } from '../iptables/record.js';
import { chainFindings, COUNTED as IPTABLES_COUNTED } from '../iptables/status.js';
import { buildNftRuleset } from './build.js';
import { listedComment, parseListing, type ListedTable } from './listing.js';
import { COMMENT_PREFIX, TABLE_NAME, type TableFamily, type TableLayout } from './model.js';
import { listTableJson, listTableStateless, ourTables } from './nft.js';
import { rulesetDigest, targetTables } from './render.js';

export interface NftablesRecord extends InstallRecord {
  layout: TableLayout;
  /** rulesetDigest of the installed ruleset (the base chains' jump comments carry it too). */
  digest: string;
  /** Table family → `nft -s list table F tpctl` right after install. */
  tables: Partial<Record<TableFamily, string>>;
}

export function nftablesRecordPath(): string {
  return recordPath('nftables');
}

export function readNftablesRecord(): NftablesRecord | undefined {
  return readRecord<NftablesRecord>(nftablesRecordPath());
}

/** The families install writes rules for: the configured ones, IPv6 only where the host has it. */
export function installedFamilies(cfg: TransparentProxyConfig): IpFamily[] {
  const families = configuredFamilies(cfg);
  return families.includes('ipv6') && !hostHasIpv6() ? families.filter((f) => f !== 'ipv6') : families;
}

/** Today's stateless listing of each table of ours. */
export async function currentListings(tables: TableFamily[]): Promise<Map<TableFamily, string>> {
  const out = new Map<TableFamily, string>();
  for (const f of tables) out.set(f, await listTableStateless(f));
  return out;
}

const clip = (s: string): string => (s.length > 160 ? `${s.slice(0, 157)}...` : s);

function tableFindings(prefix: string, want: ListedTable, have: ListedTable, repair: string): Finding[] {
  const out: Finding[] = [];
  const add = (problem: string): void => void out.push({ problem, repair });
  for (const [name, body] of want.sets) {
    const cur = have.sets.get(name);
    if (cur === undefined) add(`${prefix}: set ${name} is missing`);
    else if (cur !== body) add(`${prefix}: set ${name} was changed, now: ${clip(cur)}`);
  }
  for (const name of have.sets.keys()) if (!want.sets.has(name)) add(`${prefix}: unexpected set ${name}`);
  for (const [name, chain] of want.chains) {
    const cur = have.chains.get(name);
    if (!cur) {
      add(`${prefix} ${name}: chain is missing${chain.header ? ': nothing reaches tpctl\'s rules from this hook' : ''}`);
      continue;
    }
    if (cur.header !== chain.header) add(`${prefix} ${name}: chain was changed, now: ${cur.header || 'a regular chain (no hook)'}`);
    const compared = (rules: string[]) => rules.map((r) => ({ key: r, comment: listedComment(r) }));
    out.push(...chainFindings(`${prefix} ${name}`, compared(chain.rules), compared(cur.rules), cur.rules, repair));
  }
  for (const name of have.chains.keys()) if (!want.chains.has(name)) add(`${prefix}: unexpected chain ${name}`);
  return out;
}

/** Differences between the tables now and what the record's settings install. */
export function nftDriftFindings(record: NftablesRecord, have: Map<TableFamily, string>, repair: string): Finding[] {
  const out: Finding[] = [];
  const rs = buildNftRuleset(record.settings, installedFamilies(record.settings));
  if (rulesetDigest(rs, record.layout) !== record.digest) {
    out.push({ problem: `the record ${nftablesRecordPath()} does not match its own settings (ruleset ${record.digest})`, repair });
  }
  const want = targetTables(rs, record.layout);
  for (const f of want) {
    const prefix = `nftables ${f} ${TABLE_NAME}`;
    const recorded = record.tables[f];
    const now = have.get(f);
    if (now === undefined) out.push({ problem: `${prefix}: the table is gone: nothing is redirected`, repair });
    else if (recorded === undefined) out.push({ problem: `${prefix}: not in the record ${nftablesRecordPath()}: rules not checked`, repair });
    else out.push(...tableFindings(prefix, parseListing(recorded), parseListing(now), repair));
  }
  for (const f of have.keys()) {
    if (!want.includes(f)) out.push({ problem: `nftables ${f} ${TABLE_NAME}: unexpected table (the settings install ${want.map((w) => `${w} ${TABLE_NAME}`).join(', ')})`, repair });
  }
  return out;
}

/**
 * The decision each rule comment counts: the iptables engine's comments, plus the
 * nftables names of its redirect rules (jumps count nothing: the rules they lead to do).
 */
const COUNTED: Record<string, Decision> = {
  ...IPTABLES_COUNTED,
  'outbound: to the proxy': 'outbound_redirected',
  'inbound: to the proxy': 'inbound_redirected',
  'outbound: proxy to a local address is inbound': 'inbound_redirected',
};

interface JsonRule {
  rule?: { comment?: string; expr?: Array<{ counter?: { packets: number } }> };
}

/** Counters from the `counter` statements of our rules (`nft -j list table`). */
export function countersFromJson(texts: string[]): Counters {
  const c: Counters = Object.fromEntries(Object.values(COUNTED).map((d) => [d, 0]));
  for (const text of texts) {
    for (const it of (JSON.parse(text) as { nftables?: JsonRule[] }).nftables ?? []) {
      const comment = it.rule?.comment;
      if (!comment?.startsWith(COMMENT_PREFIX)) continue;
      const d = COUNTED[comment.slice(COMMENT_PREFIX.length)];
      const packets = it.rule?.expr?.find((e) => e.counter)?.counter?.packets;
      if (d && packets !== undefined) c[d] = (c[d] ?? 0) + packets;
    }
  }
  return c;
}

export async function nftablesStatus(): Promise<EngineStatus | undefined> {
  const record = readNftablesRecord();
  const tables = await ourTables({ lenient: true });
  if (tables.length === 0 && !record) return undefined;
  const repair = record
    ? 'tpctl status transparent-proxy --settings | tpctl install transparent-proxy --config -'
    : 'tpctl uninstall transparent-proxy, then install again with your settings';
  const findings: Finding[] = record
    ? nftDriftFindings(record, await currentListings(tables), repair)
    : [{ problem: `nftables: tpctl's table is installed but ${nftablesRecordPath()} is missing: settings unknown, rules not checked`, repair }];
  const json = await Promise.all(tables.map((f) => listTableJson(f)));
  const status: EngineStatus = { engine: 'nftables', findings, counters: countersFromJson(json) };
  if (record) {
    status.record = record;
    status.settings = toConfigFile(record.settings);
  }
  return status;
}

export const nftablesStatusEngine: StatusEngine = {
  name: 'nftables',
  status: nftablesStatus,
  // nat rules see every process: verify's probes need no particular place.
  verifyPlacement: () => ({}),
};
