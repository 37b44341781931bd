/**
 * `--store-firewalld`: the same rules as a firewalld direct configuration, so
 * firewalld re-creates them when it reloads (it flushes rules it does not know).
 */
import { mkdirSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { jumpArgs, ruleArgs, type FamilyRuleset } from './model.js';
import { rulesetDigest } from './render.js';
import { hostPath } from '../host/root.js';

export const DEFAULT_FIREWALLD_DIRECT_PATH = '/etc/firewalld/direct.xml';

/** direct.xml under TPCTL_ROOT (tests point it at a temporary directory), else the real one. */
export function firewalldDirectPath(env: NodeJS.ProcessEnv = process.env): string {
  return hostPath(DEFAULT_FIREWALLD_DIRECT_PATH, env);
}

function xmlEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/**
 * tpctl's entries sit between these two comment lines, so uninstall removes exactly
 * them and leaves the rest of the file byte-identical. `created-file` marks a file
 * tpctl created: it is deleted again once nothing but the skeleton is left.
 */
const BEGIN = '  <!-- tpctl:begin';
const BEGIN_TEXT = 'written by tpctl install transparent-proxy --store-firewalld, removed by tpctl uninstall transparent-proxy -->';
const END = '  <!-- tpctl:end -->';
const SKELETON = ['<?xml version="1.0" encoding="utf-8"?>', '<direct>', '</direct>'];

export function renderFirewalldDirect(rulesets: FamilyRuleset[]): string {
  const out = [SKELETON[0]!, SKELETON[1]!, `${BEGIN} created-file: ${BEGIN_TEXT}`];
  for (const rs of rulesets) {
    const ipv = rs.family;
    const digest = rulesetDigest(rs);
    for (const t of rs.tables) {
      for (const c of t.chains) out.push(`  <chain ipv="${ipv}" table="${t.name}" chain="${c.name}"/>`);
    }
    for (const t of rs.tables) {
      // Priority orders rules within a chain; firewalld puts lower numbers first.
      for (const j of t.jumps) {
        out.push(
          `  <rule ipv="${ipv}" table="${t.name}" chain="${j.builtinChain}" priority="0">${xmlEscape(jumpArgs(j, digest).join(' '))}</rule>`,
        );
      }
      for (const c of t.chains) {
        c.rules.forEach((r, i) => {
          out.push(
            `  <rule ipv="${ipv}" table="${t.name}" chain="${c.name}" priority="${i}">${xmlEscape(ruleArgs(r).join(' '))}</rule>`,
          );
        });
      }
    }
  }
  out.push(END, SKELETON[2]!);
  return out.join('\n') + '\n';
}

/** Splits a file into its tpctl block (if any) and the rest, line by line (newlines kept). */
function splitBlock(text: string): { rest: string[]; block: string[] | undefined; at: number } {
  const lines = text.split(/(?<=\n)/);
  const start = lines.findIndex((l) => l.startsWith(BEGIN));
  if (start < 0) return { rest: lines, block: undefined, at: -1 };
  const end = lines.findIndex((l, i) => i > start && l.startsWith(END));
  const stop = end < 0 ? lines.length : end + 1;
  return { rest: [...lines.slice(0, start), ...lines.slice(stop)], block: lines.slice(start, stop), at: start };
}

/**
 * The file with tpctl's block (from `rendered`, a renderFirewalldDirect output) put
 * in: replacing an earlier block, or inserted as whole lines before `</direct>`.
 */
export function mergeFirewalldDirect(existing: string | undefined, rendered: string): string {
  if (existing === undefined) return rendered;
  const { rest, block, at } = splitBlock(existing);
  const created = block?.[0]?.includes('created-file') ?? false;
  let ours = splitBlock(rendered).block ?? [];
  if (!created) ours = [ours[0]!.replace(' created-file:', ':'), ...ours.slice(1)];
  let pos = at;
  if (pos < 0) {
    pos = rest.map((l) => l.trim()).lastIndexOf('</direct>');
    if (pos < 0) throw new Error('the file has no "</direct>" line to insert before (tpctl edits only whole lines)');
  }
  return [...rest.slice(0, pos), ...ours, ...rest.slice(pos)].join('');
}

/** Removes tpctl's block; false when there was none. Deletes a file tpctl created once only the skeleton is left. */
export function removeFirewalldDirect(path: string): boolean {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return false;
  }
  const { rest, block } = splitBlock(text);
  if (!block) return false;
  const remaining = rest.join('');
  if (block[0]!.includes('created-file') && remaining === `${SKELETON.join('\n')}\n`) {
    unlinkSync(path);
    return true;
  }
  const tmp = `${path}.tpctl-${process.pid}.tmp`;
  writeFileSync(tmp, remaining, { mode: statSync(path).mode & 0o7777 });
  renameSync(tmp, path);
  return true;
}

/**
 * Puts tpctl's entries into direct.xml atomically, keeping every other line of an
 * existing file; false when it already held exactly this.
 */
export function storeFirewalldDirect(path: string, xml: string): boolean {
  let existing: string | undefined;
  try {
    existing = readFileSync(path, 'utf8');
  } catch {
    // absent: write it
  }
  const merged = mergeFirewalldDirect(existing, xml);
  if (merged === existing) return false;
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tpctl-${process.pid}.tmp`;
  writeFileSync(tmp, merged, { mode: existing === undefined ? 0o644 : statSync(path).mode & 0o7777 });
  renameSync(tmp, path);
  return true;
}
