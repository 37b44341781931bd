/**
 * The `nft` binary: finding it, feeding it scripts, and reading back tpctl's tables.
 * Reads use `nft list tables` and `nft -j list table` (JSON), never the whole
 * ruleset, so foreign tables are neither parsed nor touched.
 */
import { CommandError, PreflightError } from '../errors.js';
import { findExecutable, run } from '../iptables/backend.js';
import { TABLE_NAME, type TableFamily } from './model.js';

export function requireNft(): string {
  const p = findExecutable('nft');
  if (!p) throw new PreflightError('nftables: nft not found', { hint: 'install the nftables package: apt-get install nftables' });
  return p;
}

/** `nft -f -` (or with --check, which the kernel validates and then discards). */
export async function nftScript(script: string, opts: { check?: boolean } = {}): Promise<void> {
  await run(requireNft(), [...(opts.check ? ['--check'] : []), '-f', '-'], script);
}

/**
 * The families holding a table named tpctl: none without nft. `lenient`: a listing
 * that fails (a kernel without nf_tables) counts as none too, so the other engines'
 * conflict checks and uninstall work on hosts where nftables cannot run.
 */
export async function ourTables(opts: { lenient?: boolean } = {}): Promise<TableFamily[]> {
  const nft = findExecutable('nft');
  if (!nft) return [];
  let out: string;
  try {
    out = (await run(nft, ['list', 'tables'])).stdout;
  } catch (e) {
    if (opts.lenient) return [];
    throw e;
  }
  const found: TableFamily[] = [];
  for (const line of out.split('\n')) {
    const m = /^table (inet|ip|ip6) (\S+)$/.exec(line.trim());
    if (m && m[2] === TABLE_NAME) found.push(m[1] as TableFamily);
  }
  return found.sort();
}

/** What a table of ours holds, as far as recognising an install goes. */
export interface TableSummary {
  family: TableFamily;
  sets: string[];
  /** Chain name → the comments of its rules, in order. */
  chains: Map<string, string[]>;
}

interface JsonItem {
  set?: { name: string };
  chain?: { name: string };
  rule?: { chain: string; comment?: string };
}

export function parseTableJson(family: TableFamily, text: string): TableSummary {
  const items = (JSON.parse(text) as { nftables?: JsonItem[] }).nftables ?? [];
  const summary: TableSummary = { family, sets: [], chains: new Map() };
  for (const it of items) {
    if (it.set) summary.sets.push(it.set.name);
    if (it.chain) summary.chains.set(it.chain.name, []);
    if (it.rule) summary.chains.get(it.rule.chain)?.push(it.rule.comment ?? '');
  }
  summary.sets.sort();
  return summary;
}

export async function readTable(family: TableFamily): Promise<TableSummary> {
  const out = (await run(requireNft(), ['-j', 'list', 'table', family, TABLE_NAME])).stdout;
  return parseTableJson(family, out);
}

export function commandDetail(e: unknown): string {
  if (e instanceof CommandError) return e.message;
  return e instanceof Error ? e.message : String(e);
}

/** `nft -s list table F tpctl`: the table as the kernel holds it, counter values left out. */
export async function listTableStateless(family: TableFamily): Promise<string> {
  return (await run(requireNft(), ['-s', 'list', 'table', family, TABLE_NAME])).stdout;
}

/** `nft -j list table F tpctl`: rules with their comments and counter values. */
export async function listTableJson(family: TableFamily): Promise<string> {
  return (await run(requireNft(), ['-j', 'list', 'table', family, TABLE_NAME])).stdout;
}
