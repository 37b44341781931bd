import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { mergeFirewalldDirect, removeFirewalldDirect, storeFirewalldDirect } from '../../src/iptables/firewalld.js';
import { renderIptablesFirewalld } from '../../src/iptables/index.js';
import { everyFlagConfig } from './fixtures.js';

const FOREIGN = [
  '<?xml version="1.0" encoding="utf-8"?>',
  '<direct>',
  '  <rule ipv="ipv4" table="filter" chain="INPUT" priority="0">-s 192.0.2.7 -j ACCEPT</rule>',
  '  <passthrough ipv="ipv6">-t filter -A INPUT -j ACCEPT</passthrough>',
  '</direct>',
  '',
].join('\n');

describe('firewalld direct.xml: tpctl edits only its own block', () => {
  let dir = '';
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  const tmp = (): string => (dir = mkdtempSync(join(tmpdir(), 'tpt-i8-fw-')));

  it('uninstall leaves an existing file byte-identical', () => {
    const path = join(tmp(), 'direct.xml');
    writeFileSync(path, FOREIGN);
    expect(storeFirewalldDirect(path, renderIptablesFirewalld(everyFlagConfig()))).toBe(true);
    const stored = readFileSync(path, 'utf8');
    expect(stored).toContain('-s 192.0.2.7 -j ACCEPT');
    expect(stored).toContain('TPCTL_OUTBOUND_REDIRECT');
    expect(stored.startsWith(FOREIGN.split('</direct>')[0]!)).toBe(true);
    // a second store changes nothing; a changed ruleset replaces the block, not adds one
    expect(storeFirewalldDirect(path, renderIptablesFirewalld(everyFlagConfig()))).toBe(false);
    const other = everyFlagConfig();
    other.outbound.port = 15101;
    storeFirewalldDirect(path, renderIptablesFirewalld(other));
    expect(readFileSync(path, 'utf8').match(/tpctl:begin/g)).toHaveLength(1);
    expect(removeFirewalldDirect(path)).toBe(true);
    expect(readFileSync(path, 'utf8')).toBe(FOREIGN);
    expect(removeFirewalldDirect(path)).toBe(false);
  });

  it('a file tpctl created is deleted again', () => {
    const path = join(tmp(), 'firewalld', 'direct.xml');
    storeFirewalldDirect(path, renderIptablesFirewalld(everyFlagConfig()));
    expect(readFileSync(path, 'utf8')).toBe(renderIptablesFirewalld(everyFlagConfig()));
    expect(removeFirewalldDirect(path)).toBe(true);
    expect(existsSync(path)).toBe(false);
  });

  it('refuses a file without a </direct> line instead of rewriting it', () => {
    expect(() => mergeFirewalldDirect('<direct/>\n', renderIptablesFirewalld(everyFlagConfig()))).toThrow(/no "<\/direct>" line/);
  });
});
