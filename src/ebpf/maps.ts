/**
 * Makes the pinned settings maps hold exactly the desired entries: add missing
 * keys, update changed values, delete stale keys. Works the same on a fresh
 * install and on a reinstall, where it changes only what differs — the programs
 * keep running and established connections are untouched.
 */
import { closeSync } from 'node:fs';
import { join } from 'node:path';
import { BPF_MAP_TYPE, mapDelete, mapKeys, mapLookup, mapUpdate, objGet } from './libbpf.js';
import { mapSpec, type DesiredMap, type MapEntry } from './spec.js';

export interface SyncResult {
  added: number;
  updated: number;
  removed: number;
}

/** What a map holds now, for rollback of an in-place update. */
export interface MapSnapshot {
  name: string;
  entries: MapEntry[];
}

export function mapPinPath(bpffsPath: string, name: string): string {
  return join(bpffsPath, name);
}

function withMap<T>(bpffsPath: string, name: string, fn: (fd: number) => T): T {
  const fd = objGet(mapPinPath(bpffsPath, name));
  try {
    return fn(fd);
  } finally {
    closeSync(fd);
  }
}

export function readMapEntries(bpffsPath: string, name: string): MapEntry[] {
  const spec = mapSpec(name);
  return withMap(bpffsPath, name, (fd) => {
    const out: MapEntry[] = [];
    for (const key of mapKeys(fd, spec.keySize, spec.maxEntries + 1)) {
      const value = mapLookup(fd, key, spec.valueSize);
      if (value) out.push({ key, value });
    }
    return out;
  });
}

function syncOne(fd: number, desired: DesiredMap, result: SyncResult): void {
  const spec = mapSpec(desired.name);
  const want = new Map(desired.entries.map((e) => [e.key.toString('hex'), e]));
  // An ARRAY always holds every index: there is nothing to delete, only to overwrite.
  if (spec.type !== BPF_MAP_TYPE.ARRAY) {
    for (const key of mapKeys(fd, spec.keySize, spec.maxEntries + 1)) {
      if (!want.has(key.toString('hex')) && mapDelete(fd, key)) result.removed++;
    }
  }
  for (const e of want.values()) {
    const current = mapLookup(fd, e.key, spec.valueSize);
    if (current && current.equals(e.value)) continue;
    mapUpdate(fd, e.key, e.value);
    // An ARRAY slot always exists (zeroed), so writing it counts as an update.
    if (current) result.updated++;
    else result.added++;
  }
}

export function syncMaps(bpffsPath: string, desired: DesiredMap[]): SyncResult {
  const result: SyncResult = { added: 0, updated: 0, removed: 0 };
  for (const d of desired) withMap(bpffsPath, d.name, (fd) => syncOne(fd, d, result));
  return result;
}

export function snapshotMaps(bpffsPath: string, names: string[]): MapSnapshot[] {
  return names.map((name) => ({ name, entries: readMapEntries(bpffsPath, name) }));
}

export function restoreMaps(bpffsPath: string, snapshots: MapSnapshot[]): void {
  syncMaps(
    bpffsPath,
    snapshots.map((s) => ({ name: s.name, entries: s.entries, describe: [] })),
  );
}
