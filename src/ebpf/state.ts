/**
 * The install record: what was attached where, so uninstall works from it alone.
 *
 * It lives in bpffs next to the maps and links it describes, as a pinned one-entry
 * ARRAY map `tp_state_v1` whose value is NUL-padded JSON. bpffs accepts only BPF
 * objects (a regular file there fails with EPERM), and keeping the record in the
 * same bpffs means it disappears exactly when the pins do (reboot, unmount), so
 * the record and the pins can never disagree about whether an install exists.
 */
import { closeSync, existsSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { EngineError } from '../errors.js';
import { BPF_MAP_TYPE, mapCreate, mapLookup, mapUpdate, objGet, objPin } from './libbpf.js';
import { STATE_MAP, type AttachTarget } from './spec.js';
import { u32Key } from './codecs.js';
import type { TransparentProxyConfig } from '../config/types.js';
import { tpctlVersion } from '../version.js';

export interface TcRecord {
  iface: string;
  ifindex: number;
  handle: number;
  priority: number;
  /** Kernel id of the program our filter runs, to tell our filter from a foreign one; 0 until attached. */
  progId: number;
  /**
   * We created the clsact qdisc (it did not exist), so uninstall deletes it. null: the
   * install was stopped between creating it and recording that (unknown, left alone).
   */
  createdClsact: boolean | null;
  /** The network namespace tc was attached in (readlink /proc/self/ns/net); ifindexes mean nothing elsewhere. */
  netns: string;
}

/**
 * installing: written before the first pin and kept up to date as steps complete, so
 * an install killed halfway is found and removed; installed: complete; removing: an
 * uninstall (or a replacement) has started. Records without a phase are complete.
 */
export type EbpfPhase = 'installing' | 'installed' | 'removing';

export interface EbpfState {
  version: 1;
  phase?: EbpfPhase;
  /** Empty until the install is complete. */
  configHash: string;
  target: AttachTarget;
  /** Names of the programs attached (cgroup and tc). */
  programs: string[];
  /** Every link the install makes, listed before the first is attached; netns: set for a link on a network namespace (sk_lookup), what currentNetns() said at attach. */
  links: Array<{ program: string; pin: string; netns?: string }>;
  tc?: TcRecord;
  bpffs: { mounted: boolean; createdDirs: string[] };
  installedAt: string;
  /** The install's network namespace as tp_netns_v1 holds it (decimal): its cookie, or its inode number where sockops checks that (netns-check.ts). */
  netnsCookie?: string;
  /** The resolved settings of the install, for `tpctl status` (absent when too large for the record). */
  settings?: TransparentProxyConfig;
  tpctlVersion?: string;
}

/** The state with the install's settings, when they fit in the record next to the rest. */
export function withSettings(state: EbpfState, settings: TransparentProxyConfig): EbpfState {
  const full: EbpfState = { ...state, settings: { ...settings, dryRun: false }, tpctlVersion: tpctlVersion() };
  return Buffer.byteLength(JSON.stringify(full)) < STATE_MAP.valueSize ? full : { ...state, tpctlVersion: tpctlVersion() };
}

export function statePinPath(bpffsPath: string): string {
  return join(bpffsPath, STATE_MAP.name);
}

export function hasState(bpffsPath: string): boolean {
  return existsSync(statePinPath(bpffsPath));
}

export function phaseOf(state: EbpfState): EbpfPhase {
  return state.phase ?? 'installed';
}

export function readState(bpffsPath: string): EbpfState | undefined {
  const pin = statePinPath(bpffsPath);
  if (!existsSync(pin)) return undefined;
  const fd = objGet(pin);
  try {
    const raw = mapLookup(fd, u32Key.encode(0), STATE_MAP.valueSize);
    if (!raw) return undefined;
    const end = raw.indexOf(0);
    const text = raw.subarray(0, end < 0 ? raw.length : end).toString('utf8');
    if (!text) return undefined;
    const state = JSON.parse(text) as EbpfState;
    if (state.version !== 1) {
      throw new EngineError(`eBPF state ${pin}: unknown record version ${String(state.version)}`);
    }
    return state;
  } catch (e) {
    if (e instanceof SyntaxError) {
      throw new EngineError(`eBPF state ${pin}: unreadable record (${e.message})`, {
        hint: `inspect with bpftool map dump pinned ${pin}; remove the pins under ${bpffsPath} by hand`,
      });
    }
    throw e;
  } finally {
    closeSync(fd);
  }
}

function encodeState(state: EbpfState): Buffer {
  const json = Buffer.from(JSON.stringify(state), 'utf8');
  if (json.length >= STATE_MAP.valueSize) {
    throw new EngineError(`eBPF state: record of ${json.length} bytes exceeds ${STATE_MAP.valueSize - 1}`);
  }
  const value = Buffer.alloc(STATE_MAP.valueSize);
  json.copy(value);
  return value;
}

/** Writes (creating and pinning the record map if needed). Returns true when it created the pin. */
export function writeState(state: EbpfState): boolean {
  const pin = statePinPath(state.target.bpffsPath);
  const value = encodeState(state);
  const created = !existsSync(pin);
  const fd = created
    ? mapCreate(BPF_MAP_TYPE.ARRAY, STATE_MAP.name, STATE_MAP.keySize, STATE_MAP.valueSize, STATE_MAP.maxEntries)
    : objGet(pin);
  try {
    mapUpdate(fd, u32Key.encode(0), value);
    if (created) objPin(fd, pin);
  } finally {
    closeSync(fd);
  }
  return created;
}

export function removeState(bpffsPath: string): void {
  const pin = statePinPath(bpffsPath);
  if (existsSync(pin)) unlinkSync(pin);
}
