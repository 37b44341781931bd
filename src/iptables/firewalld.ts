/**
 * `--store-firewalld`: the same rules as a firewalld direct configuration, so
 * firewalld re-creates them when it reloads (it flushes rules it does not know).
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { jumpArgs, ruleArgs, type FamilyRuleset } from './model.js';
import { rulesetDigest } from './render.js';

export const DEFAULT_FIREWALLD_DIRECT_PATH = '/etc/firewalld/direct.xml';

function xmlEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

export function renderFirewalldDirect(rulesets: FamilyRuleset[]): string {
  const out = ['<?xml version="1.0" encoding="utf-8"?>', '<direct>'];
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
  out.push('</direct>');
  return out.join('\n') + '\n';
}

/** Writes direct.xml atomically; false when it already held exactly this. */
export function storeFirewalldDirect(path: string, xml: string): boolean {
  try {
    if (readFileSync(path, 'utf8') === xml) return false;
  } catch {
    // absent: write it
  }
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tpctl-${process.pid}.tmp`;
  writeFileSync(tmp, xml, { mode: 0o644 });
  renameSync(tmp, path);
  return true;
}
