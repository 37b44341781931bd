/**
 * Reading `iptables-save` output: which chains and rules are tpctl's, and which
 * tables hold nothing.
 */
import { COMMENT_PREFIX, CREATED_TABLE_MARK, isOwnChainName, TABLE_ORDER, type TableName } from './model.js';

export interface SavedTable {
  name: string;
  /** `:NAME POLICY [p:b]` lines in the order printed. */
  chainLines: string[];
  /** `-A CHAIN ...` lines in the order printed. */
  ruleLines: string[];
}

/** Parses iptables-save text into tables, keeping lines verbatim. */
export function parseSave(text: string): SavedTable[] {
  const tables: SavedTable[] = [];
  let current: SavedTable | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trimEnd();
    if (line === '' || line.startsWith('#')) continue;
    if (line.startsWith('*')) {
      current = { name: line.slice(1), chainLines: [], ruleLines: [] };
      tables.push(current);
    } else if (line === 'COMMIT') {
      current = undefined;
    } else if (current && line.startsWith(':')) {
      current.chainLines.push(line);
    } else if (current && line.startsWith('-A ')) {
      current.ruleLines.push(line);
    }
  }
  return tables;
}

function chainOfRule(line: string): string {
  return line.split(' ')[1] ?? '';
}

function jumpTargetOf(line: string): string | undefined {
  return /(?:^| )-j (\S+)/.exec(line)?.[1];
}

function hasOwnComment(line: string): boolean {
  return line.includes(`--comment "${COMMENT_PREFIX}`) || line.includes(`--comment ${COMMENT_PREFIX}`);
}

/** A tpctl rule found in a built-in chain (the jump into our chains). */
export interface OwnedJump {
  chain: string;
  /** 1-based position among the rules of `chain` when the snapshot was taken. */
  position: number;
  /** The rule as iptables-save printed it (`-A OUTPUT ... -j TPCTL_OUTPUT`). */
  line: string;
}

export interface OwnedTable {
  table: string;
  /** Our chains in the order iptables-save printed them, each with its `-A` lines. */
  chains: Map<string, string[]>;
  jumps: OwnedJump[];
  /** The install that wrote these rules created the (nft) table. */
  createdTable: boolean;
}

/** Everything tpctl owns in one family's snapshot, by table (only tables holding something). */
export function ownedState(tables: SavedTable[]): OwnedTable[] {
  const owned: OwnedTable[] = [];
  for (const t of tables) {
    const chains = new Map<string, string[]>();
    for (const cl of t.chainLines) {
      const name = cl.slice(1).split(' ')[0] ?? '';
      if (isOwnChainName(name)) chains.set(name, []);
    }
    const jumps: OwnedJump[] = [];
    const positions = new Map<string, number>();
    for (const line of t.ruleLines) {
      const chain = chainOfRule(line);
      const position = (positions.get(chain) ?? 0) + 1;
      positions.set(chain, position);
      if (isOwnChainName(chain)) {
        chains.get(chain)?.push(line);
        continue;
      }
      const target = jumpTargetOf(line);
      if ((target !== undefined && isOwnChainName(target)) || hasOwnComment(line)) {
        jumps.push({ chain, position, line });
      }
    }
    if (chains.size > 0 || jumps.length > 0) {
      const createdTable = jumps.some((j) => j.line.includes(` ${CREATED_TABLE_MARK}`));
      owned.push({ table: t.name, chains, jumps, createdTable });
    }
  }
  return owned;
}

export function hasOwned(state: OwnedTable[]): boolean {
  return state.length > 0;
}

const BUILTIN_CHAINS = new Set(['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING']);

/** Only built-in chains, policy ACCEPT, no rules: the table filters nothing. */
export function isEmptyTable(t: SavedTable): boolean {
  return (
    t.ruleLines.length === 0 &&
    t.chainLines.every((l) => {
      const [name, policy] = l.slice(1).split(' ');
      return BUILTIN_CHAINS.has(name ?? '') && policy === 'ACCEPT';
    })
  );
}

/** Tables sorted the way tpctl writes them (own tables first in packet order, then others by name). */
export function sortTables<T extends { table: string }>(items: T[]): T[] {
  const rank = (n: string) => {
    const i = TABLE_ORDER.indexOf(n as TableName);
    return i === -1 ? TABLE_ORDER.length : i;
  };
  return [...items].sort((a, b) => rank(a.table) - rank(b.table) || a.table.localeCompare(b.table));
}
