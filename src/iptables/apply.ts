/**
 * Install and uninstall: snapshot → plan → `--test` → one `iptables-restore
 * --noflush` per family → roll earlier families back if a later one fails.
 */
import type { IpFamily, Logger, TransparentProxyConfig, UninstallConfig } from '../config/types.js';
import type { EngineResult } from '../engine.js';
import { EngineError, isTpError } from '../errors.js';
import { Steps } from '../steps.js';
import { requireCapabilities } from '../host/capabilities.js';
import { type Backend, DEFAULT_RETRY, detectBackend, findExecutable, hostHasIpv6, Tables, toolName } from './backend.js';
import { buildFamilyRuleset, configuredFamilies } from './build.js';
import { firewalldDirectPath, removeFirewalldDirect, renderFirewalldDirect, storeFirewalldDirect } from './firewalld.js';
import type { FamilyRuleset } from './model.js';
import { renderFamilyRuleset, rulesetDigest, targetFromOwned, targetFromRuleset, transitionPayload, type TargetTable } from './render.js';
import { hasOwned, isEmptyTable, type OwnedTable, ownedState, parseSave } from './save.js';
import { canonicalRule } from './canonical.js';
import { readIptablesRecord, removeIptablesRecord, sweepStaleIptablesRecords, writeIptablesRecord } from './record.js';

export interface InstallOptions {
  /** Where --store-firewalld writes and uninstall removes tpctl's entries (default /etc/firewalld/direct.xml). */
  firewalldDirectPath?: string;
  /** Step hooks (tests fail or stop the engine after a family is applied). */
  steps?: Steps;
}

interface FamilyPlan {
  tables: Tables;
  /** tpctl's state before anything changed: what a rollback returns to. */
  before: OwnedTable[];
  /** Tables the snapshot listed. */
  beforeTables: string[];
  /** Empty when the family already holds exactly the target. */
  payload: string;
  /** nft tables to delete after the payload is applied, if it left them empty. */
  dropIfEmpty: string[];
}

function causeOf(e: unknown): string {
  if (isTpError(e)) return e.message;
  return e instanceof Error ? e.message : String(e);
}

/** Rules in a comparable form: the same rule rendered by tpctl or printed by iptables-save gives the same key. */
function canonicalOf(lines: string[]): string[] {
  return lines.map((l) => canonicalRule(l).key);
}

function jumpKey(chain: string, line: string): string {
  const target = /(?:^| )(?:-j|--jump) (\S+)/.exec(line)?.[1] ?? '';
  const digest = /ruleset=([0-9a-f]+)/.exec(line)?.[1] ?? '';
  return `${chain} ${target} ${digest}`;
}

/**
 * Whether the snapshot already holds the target: same tables, chains and rules per
 * chain (compared canonically, so an edited rule is drift), and jump rules carrying
 * the target's ruleset digest, each still first in its chain.
 */
export function alreadyInstalled(owned: OwnedTable[], target: TargetTable[]): boolean {
  if (owned.length !== target.length) return false;
  for (const tgt of target) {
    const cur = owned.find((o) => o.table === tgt.table);
    if (!cur || cur.chains.size !== tgt.chains.length) return false;
    for (const c of tgt.chains) {
      const lines = cur.chains.get(c.name);
      if (!lines || lines.length !== c.lines.length) return false;
      if (canonicalOf(lines).join('\n\n') !== canonicalOf(c.lines).join('\n\n')) return false;
    }
    if (cur.jumps.some((j) => j.position !== 1)) return false;
    const have = cur.jumps.map((j) => jumpKey(j.chain, j.line)).sort();
    const want = tgt.jumps.map((j) => jumpKey(j.chain, j.args)).sort();
    if (have.join('\n') !== want.join('\n')) return false;
  }
  return true;
}

function countRules(target: TargetTable[]): { rules: number; chains: number } {
  let rules = 0;
  let chains = 0;
  for (const t of target) {
    chains += t.chains.length;
    rules += t.jumps.length + t.chains.reduce((n, c) => n + c.lines.length, 0);
  }
  return { rules, chains };
}

/**
 * Deletes the named nft tables that hold nothing. A flush-mode restore of an
 * empty `*table` section removes an nft table; legacy tables cannot be removed.
 */
async function dropEmptyTables(tables: Tables, names: string[]): Promise<void> {
  if (tables.backend !== 'nft' || names.length === 0) return;
  const empty = parseSave(await tables.save()).filter((t) => names.includes(t.name) && isEmptyTable(t));
  if (empty.length === 0) return;
  await tables.restore(empty.map((t) => `*${t.name}\nCOMMIT\n`).join(''), { flush: true });
}

/** Puts every applied family back to its snapshot's tpctl state, newest first. */
async function rollback(applied: FamilyPlan[], log: Logger): Promise<void> {
  for (const p of [...applied].reverse()) {
    const saved = parseSave(await p.tables.save());
    const payload = transitionPayload(ownedState(saved), targetFromOwned(p.before));
    if (payload) await p.tables.restore(payload);
    const added = saved.map((t) => t.name).filter((n) => !p.beforeTables.includes(n));
    await dropEmptyTables(p.tables, added);
    log.debug(`${p.tables.family}: rolled back`);
  }
}

/**
 * Applies each plan with one restore; on any failure (or a step hook's injected
 * fault) earlier families are rolled back and an EngineError says so. Each family's
 * restore is atomic, and both install and uninstall work from what iptables-save
 * shows, so a kill between two families leaves a state either command completes.
 */
async function applyPlans(op: string, plans: FamilyPlan[], log: Logger, steps: Steps): Promise<void> {
  const applied: FamilyPlan[] = [];
  try {
    for (const p of plans) {
      if (p.payload) {
        // One restore is atomic: a failing one changed nothing, so it needs no rollback.
        log.debug(`${p.tables.family}: iptables-restore --noflush <<EOF\n${p.payload}EOF`);
        await p.tables.restore(p.payload);
        applied.push(p);
        await dropEmptyTables(p.tables, p.dropIfEmpty);
      }
      steps.reached(`after-${p.tables.family}`);
    }
  } catch (e) {
    try {
      await rollback(applied, log);
    } catch (re) {
      throw new EngineError(`${op} failed: ${causeOf(e)}; restoring the previous rules also failed: ${causeOf(re)}`, {
        cause: e,
        hint: 'inspect iptables-save; `tpctl uninstall transparent-proxy` removes every TPCTL_ chain',
      });
    }
    throw new EngineError(`${op} failed: ${causeOf(e)}; the host was restored to its previous rules`, { cause: e });
  }
}

/** `--test`s every payload before anything is applied. */
async function testPlans(op: string, plans: FamilyPlan[]): Promise<void> {
  for (const p of plans) {
    if (!p.payload) continue;
    try {
      await p.tables.restore(p.payload, { test: true });
    } catch (e) {
      throw new EngineError(`${op} failed: the ${p.tables.family} ruleset was rejected: ${causeOf(e)}; nothing was changed`, {
        cause: e,
        hint: 'check that the kernel has the nat table and the owner, comment, multiport and CT modules',
      });
    }
  }
}

/**
 * Plans one family: from the tpctl state in its snapshot to `rs` (undefined: no
 * tpctl rules at all). The payload is empty when nothing needs to change.
 * `savedText`: the family's iptables-save output when this run already read it
 * (backend detection), so it is not run again.
 */
async function planFamily(
  tables: Tables,
  rs: FamilyRuleset | undefined,
  savedText?: string,
): Promise<FamilyPlan & { target: TargetTable[] }> {
  const saved = parseSave(savedText ?? (await tables.save()));
  const before = ownedState(saved);
  const beforeTables = saved.map((t) => t.name);
  // nft tables this install creates (or the one it replaces created) are marked so uninstall can drop them.
  const created = new Set<string>(
    tables.backend === 'nft' && rs
      ? rs.tables
          .map((t) => t.name)
          .filter((n) => !beforeTables.includes(n) || before.some((o) => o.table === n && o.createdTable))
      : [],
  );
  const target = rs ? targetFromRuleset(rs, created) : [];
  const payload = alreadyInstalled(before, target) ? '' : transitionPayload(before, target);
  // Created tables the new state no longer uses go again once empty.
  const dropIfEmpty = before.filter((o) => o.createdTable && !created.has(o.table)).map((o) => o.table);
  return { tables, before, beforeTables, target, payload, dropIfEmpty };
}

/**
 * A plan removing every tpctl rule of one family, or undefined when there is none.
 * IPv6 is looked at even where the namespace has no IPv6 address now: rules an
 * earlier install wrote stay in the kernel. A family whose tools are missing or
 * whose save fails (no IPv6 in the kernel) holds nothing of ours.
 */
async function removalPlan(tables: Tables, savedText?: string): Promise<FamilyPlan | undefined> {
  if (!findExecutable(toolName(tables.backend, tables.family, 'save'))) return undefined;
  if (!findExecutable(toolName(tables.backend, tables.family, 'restore'))) return undefined;
  let plan: FamilyPlan;
  try {
    plan = await planFamily(tables, undefined, savedText);
  } catch (e) {
    if (tables.family === 'ipv6' && !hostHasIpv6()) return undefined;
    throw e;
  }
  return plan.payload ? plan : undefined;
}

function rulesetDigests(rulesets: FamilyRuleset[]): Array<[string, string]> {
  return rulesets.map((rs) => [rs.family, rulesetDigest(rs)]);
}

export function buildRulesets(cfg: TransparentProxyConfig, families: IpFamily[] = configuredFamilies(cfg)): FamilyRuleset[] {
  return families.map((f) => buildFamilyRuleset(cfg, f));
}

export async function installIptables(
  cfg: TransparentProxyConfig,
  log: Logger,
  opts: InstallOptions = {},
): Promise<EngineResult> {
  if (cfg.dryRun) {
    // The command layer prints renderIptablesRuleset for --dry-run; this keeps a direct call harmless.
    const lines = buildRulesets(cfg).flatMap((rs) => [`# ${rs.family}`, ...renderFamilyRuleset(rs).trimEnd().split('\n')]);
    return { changed: false, lines };
  }
  requireCapabilities('install transparent-proxy', ['NET_ADMIN']);
  let families = configuredFamilies(cfg);
  if (families.includes('ipv6') && !hostHasIpv6()) {
    log.warn('ipv6: this host has no IPv6 (no address in /proc/net/if_inet6); installing IPv4 rules only');
    families = ['ipv4'];
  }
  const { backend, saves } = await detectBackend(cfg.iptablesBackend, log);
  const lines: string[] = [];
  const plans: FamilyPlan[] = [];
  const rulesets = buildRulesets(cfg, families);
  for (const rs of rulesets) {
    const tables = new Tables(backend, rs.family, cfg.retry, log);
    tables.check();
    const plan = await planFamily(tables, rs, saves[rs.family]);
    plans.push(plan);
    const { rules, chains } = countRules(plan.target);
    const what = hasOwned(plan.before) ? 'replaced' : 'installed';
    lines.push(
      plan.payload
        ? `iptables (${backend}) ${rs.family}: ${what} ${rules} rules in ${chains} chains`
        : `iptables (${backend}) ${rs.family}: already installed, nothing changed`,
    );
  }

  // IPv6 not wanted (--ip-family-mode ipv4) or gone since a dual-stack install: our IPv6 rules go.
  if (!families.includes('ipv6')) {
    const plan = await removalPlan(new Tables(backend, 'ipv6', cfg.retry, log), saves.ipv6);
    if (plan) {
      plans.push(plan);
      lines.push(`iptables (${backend}) ipv6: removed the IPv6 rules of an earlier install`);
    }
  }

  await testPlans('install', plans);
  await applyPlans('install', plans, log, opts.steps ?? new Steps());
  let changed = plans.some((p) => p.payload !== '');
  // The record `tpctl status` compares the rules with; rewritten only when the rules or settings changed.
  const digests = Object.fromEntries(rulesetDigests(rulesets));
  const record = readIptablesRecord();
  const same = record && record.backend === backend && JSON.stringify(record.digests) === JSON.stringify(digests) &&
    JSON.stringify(record.settings) === JSON.stringify({ ...cfg, dryRun: false });
  if (changed || !same) {
    try {
      sweepStaleIptablesRecords();
      writeIptablesRecord(backend, cfg, digests);
    } catch (e) {
      // The rules are in place; only `tpctl status` loses sight of the settings (and says so).
      log.warn(`install record: ${causeOf(e)}; tpctl status will not know these settings`);
    }
  }

  if (cfg.storeFirewalld) {
    const path = opts.firewalldDirectPath ?? firewalldDirectPath();
    try {
      if (storeFirewalldDirect(path, renderFirewalldDirect(rulesets))) {
        changed = true;
        lines.push(`firewalld: rules stored in ${path}`);
      } else {
        lines.push(`firewalld: ${path} already up to date`);
      }
    } catch (e) {
      throw new EngineError(`install: writing ${path}: ${causeOf(e)}`, {
        cause: e,
        hint: 'the iptables rules are installed; fix the path and run install again',
      });
    }
  }
  return { changed, lines };
}

function availableBackends(forced: UninstallConfig['iptablesBackend']): Backend[] {
  const candidates: Backend[] = forced === 'auto' ? ['nft', 'legacy'] : [forced];
  return candidates.filter((b) => findExecutable(toolName(b, 'ipv4', 'restore')) !== undefined);
}

export async function uninstallIptables(cfg: UninstallConfig, log: Logger, opts: InstallOptions = {}): Promise<EngineResult> {
  requireCapabilities('uninstall transparent-proxy', ['NET_ADMIN']);
  const plans: FamilyPlan[] = [];
  const lines: string[] = [];
  // --store-firewalld's entries go with the rules; the rest of direct.xml stays byte-identical.
  const fwPath = opts.firewalldDirectPath ?? firewalldDirectPath();
  let fwChanged = false;
  if (!cfg.dryRun && removeFirewalldDirect(fwPath)) {
    fwChanged = true;
    lines.push(`firewalld: tpctl's entries removed from ${fwPath}`);
  }
  for (const backend of availableBackends(cfg.iptablesBackend)) {
    for (const family of ['ipv4', 'ipv6'] as const) {
      const plan = await removalPlan(new Tables(backend, family, DEFAULT_RETRY, log));
      if (!plan) continue;
      plans.push(plan);
      const { before, payload } = plan;
      const chains = before.reduce((n, t) => n + t.chains.size, 0);
      lines.push(`iptables (${backend}) ${family}: ${cfg.dryRun ? 'would remove' : 'removed'} ${chains} chains and their jump rules`);
      if (cfg.dryRun) lines.push(...payload.trimEnd().split('\n'));
    }
  }
  if (!cfg.dryRun) sweepStaleIptablesRecords();
  if (plans.length === 0) {
    if (!cfg.dryRun) removeIptablesRecord();
    return { changed: fwChanged, lines: [...lines, 'iptables: no tpctl rules found, nothing to remove'] };
  }
  if (cfg.dryRun) return { changed: false, lines };
  await testPlans('uninstall', plans);
  await applyPlans('uninstall', plans, log, opts.steps ?? new Steps());
  removeIptablesRecord();
  return { changed: true, lines };
}
