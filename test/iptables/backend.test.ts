import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/config/types.js';
import { CommandError } from '../../src/errors.js';
import { findExecutable, legacyTableNames, Tables } from '../../src/iptables/backend.js';

// A fake iptables-nft-restore that reports a busy xtables lock a given number of
// times; it shadows the real one on PATH, so nothing reaches the kernel.
describe('Tables.restore xtables lock retries', () => {
  let dir: string;
  let savedPath: string | undefined;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), `tpt-ipt-lock-${process.pid}-`));
    savedPath = process.env.PATH;
    process.env.PATH = `${dir}:${savedPath ?? ''}`;
  });
  afterEach(() => {
    process.env.PATH = savedPath;
    rmSync(dir, { recursive: true, force: true });
  });

  function fakeRestore(busyTimes: number): string {
    const tool = join(dir, 'iptables-nft-restore');
    writeFileSync(
      tool,
      `#!/bin/sh
n=$(cat "${dir}/calls" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "${dir}/calls"
echo "$@" > "${dir}/args"
if [ $n -le ${busyTimes} ]; then echo "Another app is currently holding the xtables lock. Perhaps you want to use the -w option?" >&2; exit 4; fi
cat > "${dir}/stdin"
`,
    );
    chmodSync(tool, 0o755);
    expect(findExecutable('iptables-nft-restore')).toBe(tool);
    return tool;
  }

  const retry = { wait: 3, waitInterval: 0, maxRetries: 2, sleepBetweenRetriesMs: 10 };

  it('retries while the lock is busy, then applies', async () => {
    fakeRestore(2);
    await new Tables('nft', 'ipv4', retry, silentLogger).restore('*nat\nCOMMIT\n');
    expect(readFileSync(join(dir, 'calls'), 'utf8').trim()).toBe('3');
    expect(readFileSync(join(dir, 'args'), 'utf8').trim()).toBe('--noflush --wait 3');
    expect(readFileSync(join(dir, 'stdin'), 'utf8')).toBe('*nat\nCOMMIT\n');
  });

  it('gives up after maxRetries with the lock message', async () => {
    fakeRestore(10);
    const p = new Tables('nft', 'ipv4', retry, silentLogger).restore('*nat\nCOMMIT\n');
    await expect(p).rejects.toBeInstanceOf(CommandError);
    await expect(p).rejects.toThrow(/xtables lock/);
    expect(readFileSync(join(dir, 'calls'), 'utf8').trim()).toBe('3');
  });

  it('passes --wait-interval to legacy only', async () => {
    const tool = join(dir, 'ip6tables-legacy-restore');
    writeFileSync(tool, `#!/bin/sh\necho "$@" > "${dir}/args"\ncat > /dev/null\n`);
    chmodSync(tool, 0o755);
    await new Tables('legacy', 'ipv6', { ...retry, waitInterval: 1000 }, silentLogger).restore('x', { test: true });
    expect(readFileSync(join(dir, 'args'), 'utf8').trim()).toBe('--noflush --test --wait 3 --wait-interval 1000');
  });
});

describe('legacyTableNames (skipping an iptables-legacy-save that would print nothing)', () => {
  it('reads the tables from ip_tables_names / ip6_tables_names; undefined when unreadable', () => {
    const dir = mkdtempSync(join(tmpdir(), `tpt-ipt-proc-${process.pid}-`));
    try {
      writeFileSync(join(dir, 'ip_tables_names'), 'nat\nfilter\n');
      writeFileSync(join(dir, 'ip6_tables_names'), '');
      expect(legacyTableNames('ipv4', dir)).toEqual(['nat', 'filter']);
      expect(legacyTableNames('ipv6', dir)).toEqual([]);
      rmSync(join(dir, 'ip6_tables_names'));
      expect(legacyTableNames('ipv6', dir)).toBeUndefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
