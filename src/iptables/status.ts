/**
 * `tpctl status` for the iptables engine: the rules in TPCTL_ chains and the jumps
 * into them, compared with what the recorded settings give (the same builder
 * install uses), plus the packet counters of tpctl's own rules. Read-only: runs
 * `iptables-save -c` and nothing else.
 */
import { toConfigFile } from '../config/to-file.js';
import type { IpFamily } from '../config/types.js';
import type { Counters, Decision, EngineStatus, Finding, StatusEngine, StatusQuery } from '../engine.js';
import { type Backend, findExecutable, hostHasIpv6, run, toolName } from './backend.js';
import { buildFamilyRuleset, configuredFamilies } from './build.js';
import { canonicalRule, type CanonicalRule } from './canonical.js';
import { COMMENT_PREFIX, isOwnChainName } from './model.js';
import { iptablesRecordPath, readIptablesRecord, type IptablesRecord } from './record.js';
import { rulesetDigest, targetFromRuleset, type TargetTable } from './render.js';
import { ownedState, parseSave, type OwnedTable } from './save.js';

/** The decision each of tpctl's rule comments counts (rules not listed count nothing); nftables reuses it. */
export const COUNTED: Record<string, Decision> = {
  'outbound: redirect': 'outbound_redirected',
  'inbound: redirect': 'inbound_redirected',
  'vnet: outbound to the proxy': 'outbound_redirected',
  'dns: every query to the proxy': 'dns_redirected',
  'dns: resolv.conf server to the proxy': 'dns_redirected',
  'vnet: dns to the proxy': 'dns_redirected',
  'outbound: excluded port': 'outbound_excluded_port',
  'inbound: excluded port': 'inbound_excluded_port',
  'outbound: excluded address': 'outbound_excluded_address',
  'inbound: excluded source': 'inbound_excluded_address',
  'output: excluded for this uid': 'excluded_uid',
  'outbound: proxy traffic': 'proxy_passthrough',
  'outbound: inbound passthrough from the proxy': 'proxy_passthrough',
  'dns: the proxy resolves upstream directly': 'proxy_passthrough',
};

interface FamilySave {
  family: IpFamily;
  /** iptables-save -c text, counters stripped (parseSave's input). */
  text: string;
  /** `-A` lines with their packet counts, as printed. */
  counted: Array<{ line: string; packets: number }>;
}

async function saveWithCounters(backend: Backend, family: IpFamily): Promise<FamilySave | undefined> {
  const cmd = findExecutable(toolName(backend, family, 'save'));
  if (!cmd) return undefined;
  let out: string;
  try {
    out = (await run(cmd, ['-c'])).stdout;
  } catch {
    return undefined; // no such family in this kernel: nothing of ours either
  }
  const counted: FamilySave['counted'] = [];
  const lines = out.split('\n').map((l) => {
    const m = /^\[(\d+):\d+\] (-A .*)$/.exec(l);
    if (!m) return l;
    counted.push({ line: m[2]!, packets: Number(m[1]) });
    return m[2]!;
  });
  return { family, text: lines.join('\n'), counted };
}

async function survey(backend: Backend): Promise<FamilySave[]> {
  const out: FamilySave[] = [];
  for (const f of ['ipv4', 'ipv6'] as const) {
    const s = await saveWithCounters(backend, f);
    if (s) out.push(s);
  }
  return out;
}

const holds = (saves: FamilySave[]): boolean => saves.some((s) => ownedState(parseSave(s.text)).length > 0);

function countersOf(saves: FamilySave[]): Counters {
  // Every decision these rules can count is reported, 0 until a packet matches.
  const c: Counters = Object.fromEntries(Object.values(COUNTED).map((d) => [d, 0]));
  for (const s of saves) {
    for (const { line, packets } of s.counted) {
      const chain = line.split(' ')[1] ?? '';
      if (!isOwnChainName(chain)) continue;
      const comment = canonicalRule(line).comment.slice(COMMENT_PREFIX.length);
      const d = COUNTED[comment];
      if (d) c[d] = (c[d] ?? 0) + packets;
    }
  }
  return c;
}

/** A rule as chainFindings compares it: equal keys ⇔ same rule; the comment names it. */
export type ComparedRule = Pick<CanonicalRule, 'key' | 'comment'>;

/** Missing, extra and changed rules of one chain, by an LCS over canonical rules. */
export function chainFindings(where: string, want: ComparedRule[], have: ComparedRule[], haveLines: string[], repair: string): Finding[] {
  const n = want.length;
  const m = have.length;
  const lcs: number[][] = Array.from({ length: n + 1 }, () => new Array<number>(m + 1).fill(0));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i]![j] = want[i]!.key === have[j]!.key ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
    }
  }
  const missing: ComparedRule[] = [];
  const extra: Array<{ rule: ComparedRule; line: string }> = [];
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && want[i]!.key === have[j]!.key) {
      i++;
      j++;
    } else if (j < m && (i === n || lcs[i]![j + 1]! >= lcs[i + 1]![j]!)) {
      extra.push({ rule: have[j]!, line: haveLines[j]! });
      j++;
    } else {
      missing.push(want[i]!);
      i++;
    }
  }
  const out: Finding[] = [];
  for (const w of missing) {
    const k = extra.findIndex((e) => e.rule.comment === w.comment && w.comment !== '');
    if (k >= 0) {
      const [e] = extra.splice(k, 1);
      out.push({ problem: `${where}: rule "${w.comment}" was changed, now: ${e!.line}`, repair });
    } else {
      out.push({ problem: `${where}: rule "${w.comment}" is missing`, repair });
    }
  }
  for (const e of extra) out.push({ problem: `${where}: unexpected rule: ${e.line}`, repair });
  return out;
}

function tableFindings(prefix: string, target: TargetTable[], owned: OwnedTable[], digest: string, repair: string): Finding[] {
  const out: Finding[] = [];
  for (const t of target) {
    const cur = owned.find((o) => o.table === t.table);
    for (const c of t.chains) {
      const where = `${prefix} ${t.table} ${c.name}`;
      const lines = cur?.chains.get(c.name);
      if (!lines) {
        out.push({ problem: `${where}: chain is missing`, repair });
        continue;
      }
      out.push(...chainFindings(where, c.lines.map(canonicalRule), lines.map(canonicalRule), lines, repair));
    }
    for (const j of t.jumps) {
      const target = /--jump (\S+)/.exec(j.args)?.[1] ?? '';
      const found = cur?.jumps.find((x) => x.chain === j.chain && / -j (\S+)/.exec(x.line)?.[1] === target);
      if (!found) out.push({ problem: `${prefix} ${t.table} ${j.chain}: the jump to ${target} was removed: nothing reaches tpctl's rules`, repair });
      else if (found.position !== 1) out.push({ problem: `${prefix} ${t.table} ${j.chain}: the jump to ${target} is rule ${found.position}, no longer first (rules before it decide first)`, repair });
      else if (!found.line.includes(`ruleset=${digest}`)) out.push({ problem: `${prefix} ${t.table} ${j.chain}: the jump to ${target} belongs to another ruleset`, repair });
    }
    const wantChains = new Set(t.chains.map((c) => c.name));
    for (const name of cur?.chains.keys() ?? []) {
      if (!wantChains.has(name)) out.push({ problem: `${prefix} ${t.table}: unexpected chain ${name}`, repair });
    }
  }
  for (const o of owned) {
    if (!target.some((t) => t.table === o.table)) out.push({ problem: `${prefix} ${o.table}: unexpected tpctl rules in this table`, repair });
  }
  return out;
}

/** NAT rules of the other backend in the chains tpctl hooks: both backends' NAT applies to the same packets. */
function conflictFindings(other: Backend, saves: FamilySave[]): Finding[] {
  const out: Finding[] = [];
  for (const s of saves) {
    const owned = ownedState(parseSave(s.text));
    if (owned.length > 0) {
      out.push({
        problem: `iptables-${other} ${s.family} also holds tpctl chains: both backends redirect the same packets`,
        repair: `tpctl uninstall transparent-proxy --iptables-backend ${other}`,
      });
      continue;
    }
    const nat = parseSave(s.text).find((t) => t.name === 'nat');
    const foreign = nat?.ruleLines.filter((l) => /^-A (OUTPUT|PREROUTING) /.test(l) && /-j (REDIRECT|DNAT|TPROXY)/.test(l)) ?? [];
    if (foreign.length > 0) {
      out.push({
        problem: `iptables-${other} ${s.family} nat holds ${foreign.length} REDIRECT/DNAT rule(s) in OUTPUT/PREROUTING that may take traffic before tpctl's`,
        repair: `inspect: ${toolName(other, s.family, 'save')} -t nat`,
      });
    }
  }
  return out;
}

export async function iptablesStatus(q: StatusQuery): Promise<EngineStatus | undefined> {
  const record = readIptablesRecord();
  const backends: Backend[] = q.iptablesBackend === 'auto' ? ['nft', 'legacy'] : [q.iptablesBackend];
  const surveys = new Map<Backend, FamilySave[]>();
  for (const b of ['nft', 'legacy'] as const) surveys.set(b, await survey(b));
  const holder = backends.find((b) => holds(surveys.get(b) ?? []));
  const backend: Backend | undefined = holder ?? (record?.backend as Backend | undefined);
  if (!backend || (!holder && !record)) return undefined;
  const saves = surveys.get(backend) ?? [];
  const repair = record
    ? `tpctl status transparent-proxy --settings | tpctl install transparent-proxy --config -`
    : 'tpctl uninstall transparent-proxy, then install again with your settings';
  const findings: Finding[] = [];
  if (!record) {
    findings.push({ problem: `iptables-${backend}: tpctl's chains are installed but ${iptablesRecordPath()} is missing: settings unknown, rules not checked`, repair });
  } else {
    if (record.backend !== backend) findings.push({ problem: `the record says iptables-${record.backend}, the rules are in iptables-${backend}`, repair });
    findings.push(...rulesetFindings(record, backend, saves, repair));
  }
  const other: Backend = backend === 'nft' ? 'legacy' : 'nft';
  findings.push(...conflictFindings(other, surveys.get(other) ?? []));
  const status: EngineStatus = { engine: 'iptables', backend, findings, counters: countersOf(saves) };
  if (record) {
    status.record = record;
    status.settings = toConfigFile(record.settings);
  }
  return status;
}

function rulesetFindings(record: IptablesRecord, backend: Backend, saves: FamilySave[], repair: string): Finding[] {
  const cfg = record.settings;
  let families = configuredFamilies(cfg);
  if (families.includes('ipv6') && !hostHasIpv6()) families = ['ipv4'];
  const out: Finding[] = [];
  let anyOwned = false;
  for (const family of ['ipv4', 'ipv6'] as const) {
    const save = saves.find((s) => s.family === family);
    const owned = save ? ownedState(parseSave(save.text)) : [];
    if (owned.length > 0) anyOwned = true;
    const prefix = `iptables-${backend} ${family}`;
    if (!families.includes(family)) {
      if (owned.length > 0) out.push({ problem: `${prefix}: tpctl rules present but the settings install none for ${family}`, repair });
      continue;
    }
    const rs = buildFamilyRuleset(cfg, family);
    out.push(...tableFindings(prefix, targetFromRuleset(rs), owned, rulesetDigest(rs), repair));
  }
  if (!anyOwned) return [{ problem: `iptables-${backend}: every tpctl rule is gone (installed ${record.installedAt})`, repair }];
  return out;
}

export const iptablesStatusEngine: StatusEngine = {
  name: 'iptables',
  status: iptablesStatus,
  verifyPlacement: () => ({}),
};
