/**
 * The iptables engine's install record: which backend, tpctl version, when, and the
 * resolved settings, so `tpctl status` can compare the rules with what these
 * settings give. iptables has no place for it (comments hold 256 characters), so it
 * is a file under /run/tpctl, one per network namespace (rules are per namespace),
 * readable by root only. /run is emptied at boot, exactly when the rules go too.
 */
import { mkdirSync, readFileSync, readlinkSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { InstallRecord } from '../engine.js';
import type { TransparentProxyConfig } from '../config/types.js';
import { tpctlVersion } from '../version.js';

export const RUN_DIR = '/run/tpctl';

/** `/run/tpctl/iptables-net-4026531840.json` for this process's network namespace. */
export function iptablesRecordPath(runDir = RUN_DIR): string {
  const ns = /\[(\d+)\]/.exec(readlinkSync('/proc/self/ns/net'))?.[1] ?? 'unknown';
  return join(runDir, `iptables-net-${ns}.json`);
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
  mkdirSync(join(path, '..'), { recursive: true, mode: 0o755 });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(record, null, 1)}\n`, { mode: 0o600 });
  renameSync(tmp, path);
}

export function readIptablesRecord(path = iptablesRecordPath()): IptablesRecord | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as IptablesRecord;
  } catch {
    return undefined;
  }
}

export function removeIptablesRecord(path = iptablesRecordPath()): void {
  rmSync(path, { force: true });
}
