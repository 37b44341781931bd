/**
 * The install record of the rule-based engines (iptables, nftables): which backend,
 * tpctl version, when, and the resolved settings, so `tpctl status` can compare the
 * rules with what these settings give. Neither has a place for it (comments hold 256
 * and 128 characters), so it is a file under /run/tpctl, one per engine and network
 * namespace (rules are per namespace), readable by root only. /run is emptied at
 * boot, exactly when the rules go too.
 */
import { mkdirSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { InstallRecord } from '../engine.js';
import type { TransparentProxyConfig } from '../config/types.js';
import { tpctlVersion } from '../version.js';

export const RUN_DIR = '/run/tpctl';

export type RecordedEngine = 'iptables' | 'nftables';

/** `/run/tpctl/iptables-net-4026531840.json` for this process's network namespace. */
export function recordPath(engine: RecordedEngine, runDir = RUN_DIR): string {
  const ns = /\[(\d+)\]/.exec(readlinkSync('/proc/self/ns/net'))?.[1] ?? 'unknown';
  return join(runDir, `${engine}-net-${ns}.json`);
}

export function iptablesRecordPath(runDir = RUN_DIR): string {
  return recordPath('iptables', runDir);
}

/** Writes a record atomically (root-only file). */
export function writeRecord(record: InstallRecord, path: string): void {
  mkdirSync(join(path, '..'), { recursive: true, mode: 0o755 });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(record, null, 1)}\n`, { mode: 0o600 });
  renameSync(tmp, path);
}

export function readRecord<T extends InstallRecord>(path: string): T | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

export interface IptablesRecord extends InstallRecord {
  /** Ruleset digest per family (the jump comments carry it): a record of other rules is stale. */
  digests: Record<string, string>;
}

export function writeIptablesRecord(backend: string, settings: TransparentProxyConfig, digests: Record<string, string>, path = iptablesRecordPath()): void {
  const record: IptablesRecord = {
    engine: 'iptables',
    backend,
    tpctlVersion: tpctlVersion(),
    installedAt: new Date().toISOString(),
    settings: { ...settings, dryRun: false },
    digests,
  };
  writeRecord(record, path);
}

export function readIptablesRecord(path = iptablesRecordPath()): IptablesRecord | undefined {
  return readRecord<IptablesRecord>(path);
}

export function removeIptablesRecord(path = iptablesRecordPath()): void {
  removeRecord(path);
}

export function removeRecord(path: string): void {
  rmSync(path, { force: true });
}

/** Inodes of every network namespace still alive: held by a process or bind-mounted under /run/netns. */
function liveNetnsInodes(): Set<string> {
  const live = new Set<string>();
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const m = /\[(\d+)\]/.exec(readlinkSync(`/proc/${pid}/ns/net`));
      if (m) live.add(m[1]!);
    } catch {
      // gone, or not ours to read
    }
  }
  try {
    for (const name of readdirSync('/run/netns')) {
      try {
        live.add(String(statSync(join('/run/netns', name)).ino));
      } catch {
        // removed meanwhile
      }
    }
  } catch {
    // no named namespaces
  }
  return live;
}

/**
 * Removes the records of network namespaces that no longer exist (deleted without an
 * uninstall), so a namespace that later gets the same inode does not inherit one.
 * Install and uninstall call it; status stays read-only.
 */
export function sweepStaleIptablesRecords(runDir = RUN_DIR): void {
  sweepStaleRecords('iptables', runDir);
}

export function sweepStaleRecords(engine: RecordedEngine, runDir = RUN_DIR): void {
  let names: string[];
  try {
    names = readdirSync(runDir).filter((n) => new RegExp(`^${engine}-net-\\d+\\.json$`).test(n));
  } catch {
    return;
  }
  if (names.length === 0) return;
  const live = liveNetnsInodes();
  for (const n of names) {
    const ino = /(\d+)/.exec(n)![1]!;
    if (!live.has(ino)) rmSync(join(runDir, n), { force: true });
  }
}
