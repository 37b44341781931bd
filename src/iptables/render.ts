/**
 * Rendering to iptables-restore text. One function writes every payload tpctl
 * feeds to `iptables-restore --noflush`: install, replace, uninstall and rollback
 * are all "go from the tpctl state found in the snapshot to this target state".
 *
 * Atomicity: a whole family is one restore call. Inside it, declaring a chain
 * (`:TPCTL_X - [0:0]`) flushes it if it exists, old jump rules are removed with
 * `-D` copies of what iptables-save printed, our chains are refilled, jumps are
 * inserted, and chains the target no longer has are deleted with `-X`. The
 * kernel sees either the old or the new ruleset, never a mix.
 */
import { createHash } from 'node:crypto';
import { jumpArgs, ruleArgs, type FamilyRuleset } from './model.js';
import { sortTables, type OwnedTable } from './save.js';

export interface TargetChain {
  name: string;
  /** Complete restore lines (`--append TPCTL_X ...` or `-A TPCTL_X ...`). */
  lines: string[];
}

export interface TargetJump {
  chain: string;
  /** 1-based insert position in the built-in chain. */
  position: number;
  /** Arguments after `-I CHAIN POS`. */
  args: string;
}

export interface TargetTable {
  table: string;
  chains: TargetChain[];
  jumps: TargetJump[];
}

/** Identifies a family's ruleset; written into the jump rules' comment so a reinstall can recognise it. */
export function rulesetDigest(rs: FamilyRuleset): string {
  return createHash('sha256').update(JSON.stringify(rs)).digest('hex').slice(0, 12);
}

/** `createdTables`: tables whose jump rules carry the created-table mark. */
export function targetFromRuleset(rs: FamilyRuleset, createdTables: ReadonlySet<string> = new Set()): TargetTable[] {
  const digest = rulesetDigest(rs);
  return rs.tables.map((t) => ({
    table: t.name,
    chains: t.chains.map((c) => ({
      name: c.name,
      lines: c.rules.map((r) => ['--append', c.name, ...ruleArgs(r)].join(' ')),
    })),
    jumps: t.jumps.map((j) => ({ chain: j.builtinChain, position: 1, args: jumpArgs(j, digest, createdTables.has(t.name)).join(' ') })),
  }));
}

/** The tpctl state of a snapshot as a target: used to roll back to it. */
export function targetFromOwned(owned: OwnedTable[]): TargetTable[] {
  return owned.map((t) => ({
    table: t.table,
    chains: [...t.chains].map(([name, lines]) => ({ name, lines })),
    jumps: t.jumps.map((j) => ({
      chain: j.chain,
      position: j.position,
      args: j.line.slice(`-A ${j.chain} `.length),
    })),
  }));
}

/** Restore text (for `--noflush`) turning `current` into `target`; '' when both are empty. */
export function transitionPayload(current: OwnedTable[], target: TargetTable[]): string {
  const names = new Set([...current.map((t) => t.table), ...target.map((t) => t.table)]);
  const out: string[] = [];
  for (const { table } of sortTables([...names].map((table) => ({ table })))) {
    const cur = current.find((t) => t.table === table);
    const tgt = target.find((t) => t.table === table);
    const targetChains = tgt?.chains.map((c) => c.name) ?? [];
    const staleChains = [...(cur?.chains.keys() ?? [])].filter((n) => !targetChains.includes(n));
    out.push(`*${table}`);
    for (const name of [...targetChains, ...staleChains]) out.push(`:${name} - [0:0]`);
    for (const j of cur?.jumps ?? []) out.push(`-D${j.line.slice(2)}`);
    // Ascending positions: each insert lands where it was when the snapshot was taken.
    const jumps = [...(tgt?.jumps ?? [])].sort((a, b) => a.position - b.position);
    for (const j of jumps) out.push(`--insert ${j.chain} ${j.position} ${j.args}`);
    for (const c of tgt?.chains ?? []) out.push(...c.lines);
    for (const name of staleChains) out.push(`--delete-chain ${name}`);
    out.push('COMMIT');
  }
  return out.length === 0 ? '' : out.join('\n') + '\n';
}

/** The ruleset as a fresh install would write it (the dry-run text and the golden files). */
export function renderFamilyRuleset(rs: FamilyRuleset): string {
  return transitionPayload([], targetFromRuleset(rs));
}
