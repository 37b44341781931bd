/**
 * Makes the pinned settings maps hold exactly the desired entries: add missing
 * keys, update changed values, delete stale keys. Works the same on a fresh
 * install and on a reinstall, where it changes only what differs — the programs
 * keep running and established connections are untouched.
 */
import { closeSync } from 'node:fs';
import { join } from 'node:path';
import { LibbpfError } from '../errors.js';
import { BPF_MAP_TYPE, mapDelete, mapInfo, mapKeys, mapLookup, mapUpdate, mapUpdateBatch, objGet } from './libbpf.js';
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

/** max_entries of each pinned map (a settings map may be bigger than the object declares). */
export function pinnedCapacities(bpffsPath: string, names: string[]): Map<string, number> {
  return new Map(names.map((name) => [name, withMap(bpffsPath, name, (fd) => mapInfo(fd).maxEntries)]));
}

export function readMapEntries(bpffsPath: string, name: string): MapEntry[] {
  const spec = mapSpec(name);
  return withMap(bpffsPath, name, (fd) => {
    const out: MapEntry[] = [];
    for (const key of mapKeys(fd, spec.keySize, mapInfo(fd).maxEntries + 1)) {
      const value = mapLookup(fd, key, spec.valueSize);
      if (value) out.push({ key, value });
    }
    return out;
  });
}

/** Entries per bpf_map_update_batch call: bounds the buffers tpctl builds. */
const BATCH = 8192;

/** Out of kernel memory or map room: the error names the map and the limit that was hit. */
export function mapWriteError(e: unknown, name: string, count: number): unknown {
  if (!(e instanceof LibbpfError) || !['ENOMEM', 'E2BIG', 'ENOSPC'].includes(e.errnoName)) return e;
  const memory = e.errnoName === 'ENOMEM';
  return new LibbpfError(e.op, e.errno, e.errnoName, `writing ${count} entries to map ${name}: ${memory ? 'out of kernel memory for BPF maps' : 'the map is full'}`, {
    hint: memory
      ? "BPF maps are charged to tpctl's memory cgroup (memory.max), or to RLIMIT_MEMLOCK (ulimit -l) before Linux 5.11: raise that limit or exclude fewer addresses"
      : 'uninstall and install again to recreate the maps at the size the settings need',
    cause: e,
  });
}

/**
 * Writes entries in batches, one syscall each (bpf_map_update_batch: hash maps since
 * 5.6; LPM tries on newer kernels — 100,000 CIDRs in ~85 ms instead of ~180 ms on
 * 6.18), or one bpf_map_update_elem each where the kernel has no batch op for the type.
 */
function writeEntries(fd: number, name: string, entries: MapEntry[]): void {
  if (entries.length === 0) return;
  const spec = mapSpec(name);
  try {
    let batched = spec.type !== BPF_MAP_TYPE.ARRAY;
    for (let i = 0; batched && i < entries.length; i += BATCH) {
      const chunk = entries.slice(i, i + BATCH);
      batched = mapUpdateBatch(fd, Buffer.concat(chunk.map((e) => e.key)), Buffer.concat(chunk.map((e) => e.value)), chunk.length);
      if (!batched && i > 0) throw new Error(`bpf_map_update_batch on ${name} stopped working after ${i} entries`);
    }
    if (batched) return;
    for (const e of entries) mapUpdate(fd, e.key, e.value);
  } catch (e) {
    throw mapWriteError(e, name, entries.length);
  }
}

function syncOne(fd: number, desired: DesiredMap, result: SyncResult): void {
  const spec = mapSpec(desired.name);
  const capacity = mapInfo(fd).maxEntries;
  const want = new Map(desired.entries.map((e) => [e.key.toString('hex'), e]));
  const present = new Set<string>();
  // An ARRAY always holds every index: there is nothing to delete, only to overwrite.
  if (spec.type !== BPF_MAP_TYPE.ARRAY) {
    for (const key of mapKeys(fd, spec.keySize, capacity + 1)) {
      const hex = key.toString('hex');
      if (want.has(hex)) present.add(hex);
      else if (mapDelete(fd, key)) result.removed++;
    }
  }
  const writes: MapEntry[] = [];
  for (const [hex, e] of want) {
    // Only keys already there can hold the right value; a fresh map needs no lookups.
    const current = spec.type === BPF_MAP_TYPE.ARRAY || present.has(hex) ? mapLookup(fd, e.key, spec.valueSize) : undefined;
    if (current && current.equals(e.value)) continue;
    writes.push(e);
    // An ARRAY slot always exists (zeroed), so writing it counts as an update.
    if (current) result.updated++;
    else result.added++;
  }
  writeEntries(fd, desired.name, writes);
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
