/**
 * tpctl's pin directory (the bpffs path) holds tpctl's pins and nothing else: the
 * maps of MAP_SPECS, the state record, and `links/` with one pin per cgroup program.
 * This module lists what is there (by lstat, never following a link), so uninstall
 * can find tpctl's objects by name even without a record, and install can refuse a
 * directory where something else has been put.
 */
import { lstatSync, readdirSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { PreflightError } from '../errors.js';
import { untrustedReason } from '../host/private-dir.js';
import { MAP_SPECS, PROGRAM_SPECS, STATE_MAP, linkedPrograms } from './spec.js';

/** Present in every fresh bpffs on kernels with bpf_preload: not pins of anyone. */
export const BPFFS_PRELOAD_ENTRIES: ReadonlySet<string> = new Set(['maps.debug', 'progs.debug']);
export const LINKS_DIR = 'links';

const MAP_NAMES = new Set(MAP_SPECS.map((m) => m.name));
const LINK_NAMES = new Set(linkedPrograms(PROGRAM_SPECS).map((p) => p.name));

export interface PinInventory {
  /** Our map pins present (names). */
  maps: string[];
  /** Our link pins present (paths), symbolic links excluded. */
  links: string[];
  state: boolean;
  linksDir: boolean;
  /** Entries tpctl does not create, relative to the pin directory. */
  foreign: string[];
  /** Entries with our names that cannot be trusted (a symlink, another owner, writable by others). */
  untrusted: string[];
}

function lstatOr(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
    throw e;
  }
}

export function inventoryPins(bpffsPath: string): PinInventory {
  const inv: PinInventory = { maps: [], links: [], state: false, linksDir: false, foreign: [], untrusted: [] };
  const top = lstatOr(bpffsPath);
  if (!top?.isDirectory()) return inv;
  for (const name of readdirSync(bpffsPath).sort()) {
    if (BPFFS_PRELOAD_ENTRIES.has(name)) continue;
    const path = join(bpffsPath, name);
    const st = lstatOr(path);
    if (!st) continue;
    const known = MAP_NAMES.has(name) || name === STATE_MAP.name || name === LINKS_DIR;
    if (!known) {
      inv.foreign.push(name);
      continue;
    }
    const reason = untrustedReason(path, st, false);
    if (reason) {
      inv.untrusted.push(reason);
      continue;
    }
    if (name === STATE_MAP.name) inv.state = true;
    else if (MAP_NAMES.has(name)) inv.maps.push(name);
    else if (st.isDirectory()) {
      inv.linksDir = true;
      for (const link of readdirSync(path).sort()) {
        const lp = join(path, link);
        const lst = lstatOr(lp);
        if (!lst) continue;
        if (!LINK_NAMES.has(link)) inv.foreign.push(`${LINKS_DIR}/${link}`);
        else {
          const why = untrustedReason(lp, lst, false);
          if (why) inv.untrusted.push(why);
          else inv.links.push(lp);
        }
      }
    } else {
      inv.foreign.push(name); // `links` that is not a directory
    }
  }
  return inv;
}

/** Anything of ours pinned here (an install, or what an interrupted one left). */
export function holdsOurPins(inv: PinInventory): boolean {
  return inv.state || inv.maps.length > 0 || inv.links.length > 0;
}

const listed = (xs: string[]): string => {
  const shown = xs.slice(0, 3).map((x) => (x.length > 40 ? `${x.slice(0, 40)}…` : x));
  return `${shown.join(', ')}${xs.length > 3 ? ` and ${xs.length - 3} more` : ''}`;
};

/** Install refuses a pin directory holding anything tpctl did not put there. */
export function requireOwnPinDir(what: string, bpffsPath: string): PinInventory {
  const inv = inventoryPins(bpffsPath);
  if (inv.untrusted.length > 0) {
    throw new PreflightError(`${what}: ${inv.untrusted[0]}`, {
      hint: 'tpctl builds only on pins root made: remove it (unpinning a link detaches its program) and install again',
    });
  }
  if (inv.foreign.length > 0) {
    throw new PreflightError(`${what}: holds ${listed(inv.foreign)}, which tpctl did not create`, {
      hint: `the pin directory is tpctl's alone: remove what is not tpctl's, or pass another --ebpf-bpffs-path (e.g. /sys/fs/bpf/tpctl)`,
    });
  }
  return inv;
}
