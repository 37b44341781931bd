import { existsSync, mkdtempSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { iptablesRecordPath, readIptablesRecord, sweepStaleIptablesRecords, writeIptablesRecord } from '../../src/iptables/record.js';
import { defaultConfig } from '../fixtures/config.js';

describe('iptables install record', () => {
  let dir = '';
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('is per network namespace and records backend, version and settings', () => {
    dir = mkdtempSync(join(tmpdir(), 'tpt-i8-rec-'));
    const path = iptablesRecordPath(dir);
    const ns = /\[(\d+)\]/.exec(readlinkSync('/proc/self/ns/net'))![1];
    expect(path).toBe(join(dir, `iptables-net-${ns}.json`));
    writeIptablesRecord('nft', defaultConfig(), { ipv4: 'abc' }, path);
    expect(readIptablesRecord(path)).toMatchObject({ engine: 'iptables', backend: 'nft', digests: { ipv4: 'abc' }, settings: { outbound: { port: 15001 } } });
  });

  it('the sweep removes records of namespaces that are gone and keeps live ones', () => {
    dir = mkdtempSync(join(tmpdir(), 'tpt-i8-rec-'));
    const live = iptablesRecordPath(dir);
    writeIptablesRecord('nft', defaultConfig(), {}, live);
    const dead = join(dir, 'iptables-net-1.json'); // inode 1 is never a network namespace
    writeFileSync(dead, '{}');
    sweepStaleIptablesRecords(dir);
    expect(existsSync(dead)).toBe(false);
    expect(existsSync(live)).toBe(true);
  });
});
