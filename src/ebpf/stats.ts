/**
 * The decision counters the programs keep in tp_stats_v1 (per-CPU __u64 per
 * TP_STAT_* index, abi.h): read and summed over CPUs, without stopping anything.
 */
import { closeSync, readFileSync } from 'node:fs';
import { endianness } from 'node:os';
import type { Counters, Decision } from '../engine.js';
import { mapLookup, objGet } from './libbpf.js';
import { u32Key } from './codecs.js';

export const BPF_MAP_TYPE_PERCPU_ARRAY = 6;
/** TP_STAT_MAX in abi.h. */
export const TP_STAT_SLOTS = 16;
export const STATS_MAP = 'tp_stats_v1';

/** TP_STAT_* index of each decision the programs count (abi.h). */
export const STAT_INDEX: Record<Decision, number> = {
  outbound_redirected: 0,
  inbound_redirected: 1,
  dns_redirected: 2,
  outbound_excluded_port: 3,
  inbound_excluded_port: 4,
  outbound_excluded_address: 5,
  inbound_excluded_address: 6,
  excluded_uid: 7,
  proxy_passthrough: 8,
  no_listener: 9,
  refused_sockopt: 10,
  refused_egress: 11,
};

/** Number of possible CPUs (what per-CPU map values are sized by): `0-3,6` → 5. */
export function possibleCpus(text = readFileSync('/sys/devices/system/cpu/possible', 'utf8')): number {
  let n = 0;
  for (const part of text.trim().split(',')) {
    const [a, b] = part.split('-').map(Number);
    n += b === undefined ? 1 : (b as number) - (a as number) + 1;
  }
  return n;
}

/** Sums one per-CPU value (a native-endian __u64 per CPU). */
export function sumPerCpu(value: Buffer): number {
  let total = 0n;
  const le = endianness() === 'LE';
  for (let off = 0; off + 8 <= value.length; off += 8) total += le ? value.readBigUInt64LE(off) : value.readBigUInt64BE(off);
  return Number(total);
}

/** Every counter in the pinned stats map. */
export function readCounters(pin: string): Counters {
  const fd = objGet(pin);
  try {
    const cpus = possibleCpus();
    const out: Counters = {};
    for (const [decision, index] of Object.entries(STAT_INDEX) as Array<[Decision, number]>) {
      const v = mapLookup(fd, u32Key.encode(index), 8 * cpus);
      out[decision] = v ? sumPerCpu(v) : 0;
    }
    return out;
  } finally {
    closeSync(fd);
  }
}
