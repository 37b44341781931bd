/**
 * The decision counters the programs keep in tp_stats_v1 (per-CPU __u64 per
 * TP_STAT_* index, abi.h): read and summed over CPUs, without stopping anything.
 */
import { closeSync, readFileSync } from 'node:fs';
import { endianness } from 'node:os';
import type { Counters, Decision } from '../engine.js';
import { mapLookup, objGet } from './libbpf.js';
import { u32Key } from './codecs.js';
import { TP_STAT } from './abi.js';

export const STATS_MAP = 'tp_stats_v1';

/** TP_STAT_* index of each decision the programs count (abi.h). */
export const STAT_INDEX: Record<Decision, number> = {
  outbound_redirected: TP_STAT.TP_STAT_OUTBOUND,
  inbound_redirected: TP_STAT.TP_STAT_INBOUND,
  dns_redirected: TP_STAT.TP_STAT_DNS,
  outbound_excluded_port: TP_STAT.TP_STAT_EXCL_OUT_PORT,
  inbound_excluded_port: TP_STAT.TP_STAT_EXCL_IN_PORT,
  outbound_excluded_address: TP_STAT.TP_STAT_EXCL_OUT_ADDR,
  inbound_excluded_address: TP_STAT.TP_STAT_EXCL_IN_ADDR,
  excluded_uid: TP_STAT.TP_STAT_EXCL_UID,
  proxy_passthrough: TP_STAT.TP_STAT_PROXY,
  no_listener: TP_STAT.TP_STAT_NO_LISTENER,
  refused_sockopt: TP_STAT.TP_STAT_REFUSED_SOCKOPT,
  refused_egress: TP_STAT.TP_STAT_DROPPED_EGRESS,
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
