/**
 * The nftables engine: the iptables engine's rules, spoken natively to nftables, in
 * one table of tpctl's own (`inet tpctl`; `ip tpctl` + `ip6 tpctl` where the kernel
 * has no nat in inet tables, before Linux 5.2).
 *
 * install:   build (data) → render (nft script) → `nft --check` → one `nft -f`.
 *            The script replaces any table of ours in the same transaction, so a
 *            reinstall with new settings is atomic and keeps open connections, and
 *            a failure anywhere changes nothing.
 * idempotent: a table whose chains, sets, rule comments and ruleset digest match the
 *            target is left alone.
 * uninstall: `delete table` of each table named tpctl, in one transaction; nothing
 *            else in the ruleset is read or touched.
 */
import { configuredFamilies } from '../iptables/build.js';
import { removeRecord, sweepStaleRecords, writeRecord } from '../iptables/record.js';
import { tpctlVersion } from '../version.js';
import { currentListings, installedFamilies, nftablesRecordPath, readNftablesRecord, type NftablesRecord } from './status.js';
import type { IpFamily, Logger, TransparentProxyConfig, UninstallConfig } from '../config/types.js';
import type { EngineResult } from '../engine.js';
import { EngineError } from '../errors.js';
import { Steps } from '../steps.js';
import { requireCapabilities } from '../host/capabilities.js';
import { currentKernel, kernelAtLeast, type KernelVersion } from '../host/kernel.js';
import { buildNftRuleset } from './build.js';
import { TABLE_NAME, tablesOf, type NftRuleset, type TableFamily, type TableLayout } from './model.js';
import { commandDetail, nftScript, ourTables, readTable, requireNft, type TableSummary } from './nft.js';
import { renderInstallScript, renderRemovalScript, ruleComment, rulesetDigest, tableView } from './render.js';

export { buildNftRuleset } from './build.js';
export { renderInstallScript, renderRemovalScript } from './render.js';
export { TABLE_NAME } from './model.js';
export type { TableFamily, TableLayout } from './model.js';

/** The TPCTL_FAIL_AT step that makes the apply transaction fail inside the kernel (tests). */
export const FAIL_STEP = 'nft-transaction';

export interface NftInstallOptions {
  /** Forces a table layout (tests); by default inet where the kernel has nat in inet (5.2). */
  layout?: TableLayout;
  /** Step hooks (tests fail the transaction or stop the engine once it is applied). */
  steps?: Steps;
}

/** inet tables take nat chains from Linux 5.2 on; older kernels get one table per family. */
export function layoutForKernel(k: KernelVersion = currentKernel()): TableLayout {
  return kernelAtLeast(k, 5, 2) ? 'inet' : 'split';
}

/** The nft script a fresh install writes (the --dry-run text); pure apart from reading the kernel version. */
export function renderNftablesScript(cfg: TransparentProxyConfig, layout: TableLayout = layoutForKernel()): string {
  return renderInstallScript(buildNftRuleset(cfg, configuredFamilies(cfg)), layout);
}

function expectedSummaries(rs: NftRuleset, layout: TableLayout): TableSummary[] {
  const digest = rulesetDigest(rs, layout);
  return tablesOf(layout, rs.families).map(({ family, only }) => {
    const view = tableView(rs, only);
    return {
      family,
      sets: view.sets.map((s) => s.name).sort(),
      chains: new Map(view.chains.map((c) => [c.name, c.rules.map((r) => ruleComment(r, digest, c.base !== undefined))])),
    };
  });
}

function sameSummary(a: TableSummary, b: TableSummary): boolean {
  if (a.family !== b.family || a.sets.join() !== b.sets.join() || a.chains.size !== b.chains.size) return false;
  for (const [name, comments] of a.chains) {
    if (b.chains.get(name)?.join('\n') !== comments.join('\n')) return false;
  }
  return true;
}

function counts(rs: NftRuleset): string {
  const rules = rs.chains.reduce((n, c) => n + c.rules.length, 0);
  const elements = rs.sets.reduce((n, s) => n + s.elements.length, 0);
  return `${rules} rules in ${rs.chains.length} chains, ${rs.sets.length} sets (${elements} elements)`;
}

const tableNames = (families: TableFamily[]): string => families.map((f) => `${f} ${TABLE_NAME}`).join(', ');

/** A fault for tests: a delete of a chain that does not exist, which the kernel rejects at the end of the transaction. */
function withInjectedFault(script: string, steps: Steps): string {
  if (!steps.injectsFaultAt(FAIL_STEP)) return script;
  return `${script}delete chain inet ${TABLE_NAME} tpctl_fault_injected_${FAIL_STEP.replace(/-/g, '_')}\n`;
}

async function apply(op: string, script: string, log: Logger, steps: Steps): Promise<void> {
  log.debug(`nft -f - <<EOF\n${script}EOF`);
  try {
    await nftScript(script, { check: true });
  } catch (e) {
    throw new EngineError(`${op} failed: nft rejected the ruleset: ${commandDetail(e)}; nothing was changed`, {
      cause: e,
      hint: 'check that the kernel has nf_tables with nat, ct and socket-owner (meta skuid) support',
    });
  }
  try {
    await nftScript(withInjectedFault(script, steps));
  } catch (e) {
    // One `nft -f` is one transaction: the kernel applied all of it or none.
    throw new EngineError(`${op} failed: ${commandDetail(e)}; nothing was changed (nft applies the whole script or none of it)`, { cause: e });
  }
}

export async function installNftables(cfg: TransparentProxyConfig, log: Logger, opts: NftInstallOptions = {}): Promise<EngineResult> {
  const layout = opts.layout ?? layoutForKernel();
  if (cfg.dryRun) return { changed: false, lines: renderNftablesScript(cfg, layout).trimEnd().split('\n') };
  requireCapabilities('install transparent-proxy', ['NET_ADMIN']);
  requireNft();
  const families: IpFamily[] = installedFamilies(cfg);
  if (families.length < configuredFamilies(cfg).length) {
    log.warn('ipv6: this host has no IPv6 (no address in /proc/net/if_inet6); installing IPv4 rules only');
  }
  const rs = buildNftRuleset(cfg, families);
  const existing = await ourTables();
  const want = expectedSummaries(rs, layout);
  const what = want.map((t) => t.family);
  if (existing.length === want.length && existing.every((f) => what.includes(f))) {
    const have = await Promise.all(existing.map((f) => readTable(f)));
    // Same chains and comments is not enough: a changed rule or set element is drift a reinstall repairs.
    if (want.every((w) => have.some((h) => sameSummary(w, h))) && (await matchesRecord(rs, layout, existing))) {
      return { changed: false, lines: [`nftables (${tableNames(what)}): already installed, nothing changed`] };
    }
  }
  const stale = existing.filter((f) => !what.includes(f));
  const steps = opts.steps ?? new Steps();
  await apply('install', renderInstallScript(rs, layout, stale), log, steps);
  sweepStaleRecords('nftables');
  const record: NftablesRecord = {
    engine: 'nftables',
    tpctlVersion: tpctlVersion(),
    installedAt: new Date().toISOString(),
    settings: { ...cfg, dryRun: false },
    layout,
    digest: rulesetDigest(rs, layout),
    tables: Object.fromEntries(await currentListings(what)),
  };
  writeRecord(record, nftablesRecordPath());
  steps.reached('nft-applied');
  const verb = existing.length > 0 ? 'replaced' : 'installed';
  return { changed: true, lines: [`nftables (${tableNames(what)}): ${verb} ${counts(rs)}`] };
}

/** The record describes this ruleset and the tables are still exactly as it listed them. */
async function matchesRecord(rs: NftRuleset, layout: TableLayout, tables: TableFamily[]): Promise<boolean> {
  const record = readNftablesRecord();
  if (!record || record.layout !== layout || record.digest !== rulesetDigest(rs, layout)) return false;
  const now = await currentListings(tables);
  return tables.every((f) => record.tables[f] === now.get(f));
}

/** Whether any table of ours exists (an nftables install is present). */
export async function hasNftablesInstall(): Promise<TableFamily[]> {
  return ourTables({ lenient: true });
}

export async function uninstallNftables(cfg: Pick<UninstallConfig, 'dryRun'>, log: Logger, opts: { steps?: Steps } = {}): Promise<EngineResult> {
  const tables = await ourTables({ lenient: true });
  if (!cfg.dryRun) sweepStaleRecords('nftables');
  if (tables.length === 0) {
    if (!cfg.dryRun) removeRecord(nftablesRecordPath());
    return { changed: false, lines: ['nftables: no tpctl table found, nothing to remove'] };
  }
  const script = renderRemovalScript(tables);
  if (cfg.dryRun) return { changed: false, lines: [`nftables: would remove ${tableNames(tables)}`, ...script.trimEnd().split('\n')] };
  requireCapabilities('uninstall transparent-proxy', ['NET_ADMIN']);
  const steps = opts.steps ?? new Steps();
  await apply('uninstall', script, log, steps);
  removeRecord(nftablesRecordPath());
  steps.reached('nft-applied');
  return { changed: true, lines: [`nftables: removed ${tableNames(tables)}`] };
}
