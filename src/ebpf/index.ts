/**
 * The eBPF engine: install / uninstall the transparent proxy with programs loaded
 * through libbpf, attached to a cgroup v2 (pinned bpf_links) and to tc ingress.
 *
 * install:   preflight → (same settings already installed: nothing to do)
 *            → (installed, same attach points: update maps in place)
 *            → fresh: mount bpffs if needed → load objects (maps pinned by name)
 *              → fill maps → attach + pin cgroup links → tc filter → state record.
 *            Every change made by a fresh install is journaled; on any failure the
 *            journal is replayed backwards so nothing is left behind.
 * uninstall: from the state record alone.
 */
import { existsSync, mkdirSync, readdirSync, rmdirSync, unlinkSync } from 'node:fs';
import { resolve } from 'node:path';
import { EngineError, PreflightError, TpError } from '../errors.js';
import type { Logger, TransparentProxyConfig, UninstallConfig } from '../config/types.js';
import type { EngineResult } from '../engine.js';
import { readMounts, mountBpffs, unmount } from '../host/mounts.js';
import { listInterfaces } from '../host/interfaces.js';
import { preflightInstall, preflightUninstall, planBpffs, type BpffsPlan } from './preflight.js';
import {
  MAP_SPECS,
  mapCapacities,
  buildEbpfSpec,
  describeEbpfPlan,
  configHash,
  sameAttachment,
  specNetnsCookie,
  type AttachTarget,
  type EbpfSpec,
} from './spec.js';
import { openAndLoad, type LoadedObjects } from './loader.js';
import { mapPinPath, pinnedCapacities, restoreMaps, snapshotMaps, syncMaps } from './maps.js';
import { registerListeners } from './listeners.js';
import { netnsCookie } from '../host/libc.js';
import { currentNetns, attachCgroupProgram, attachNetnsProgram, attachTc, detachLink, detachTc, linkPinPath, linksDir, tcFilterPresent, undoTcAttach } from './attach.js';
import { tcHookDestroy } from './libbpf.js';
import { attachmentFindings, listenerFindings, mapFindings } from './status.js';
import { hasState, readState, removeState, statePinPath, withSettings, writeState, type EbpfState } from './state.js';

export { buildEbpfSpec, describeEbpfPlan } from './spec.js';
export type { EbpfState } from './state.js';

/** True when a state record is pinned under bpffsPath. */
export function hasEbpfInstall(bpffsPath: string): boolean {
  return hasState(resolve(bpffsPath));
}

function failAt(step: string): void {
  if (process.env.TPCTL_FAIL_AT === step) {
    throw new EngineError(`fault injected at ${step} (TPCTL_FAIL_AT)`);
  }
}

function errorText(e: unknown): string {
  if (e instanceof TpError) return e.oneLine();
  return e instanceof Error ? e.message : String(e);
}

/** Undo steps of a fresh install, replayed newest first on failure. */
class Journal {
  private readonly steps: Array<{ what: string; undo: () => void }> = [];
  add(what: string, undo: () => void): void {
    this.steps.push({ what, undo });
  }
  /** Returns the steps that could not be undone. */
  rollback(log: Logger): string[] {
    const failed: string[] = [];
    for (const s of this.steps.splice(0).reverse()) {
      try {
        s.undo();
        log.debug(`rolled back: ${s.what}`);
      } catch (e) {
        failed.push(`${s.what}: ${errorText(e)}`);
      }
    }
    return failed;
  }
}

/** Present in every fresh bpffs on kernels with bpf_preload: not pins of anyone. */
const BPFFS_PRELOAD_ENTRIES = new Set(['maps.debug', 'progs.debug']);

function rmdirIfEmpty(dir: string): void {
  if (existsSync(dir) && readdirSync(dir).length === 0) rmdirSync(dir);
}

function stateIntact(state: EbpfState): boolean {
  if (!state.links.every((l) => existsSync(l.pin))) return false;
  if (!MAP_SPECS.every((m) => existsSync(mapPinPath(state.target.bpffsPath, m.name)))) return false;
  return state.tc ? tcFilterPresent(state.tc) : true;
}

/** Pinned settings maps too small for the desired entries, as `name needs N, holds M`. */
function outgrownMaps(bpffsPath: string, spec: EbpfSpec): string[] {
  const pinned = pinnedCapacities(bpffsPath, spec.maps.map((m) => m.name));
  return spec.maps
    .filter((m) => m.entries.length > (pinned.get(m.name) ?? 0))
    .map((m) => `${m.name} needs ${m.entries.length}, holds ${pinned.get(m.name) ?? 0}`);
}

function freshInstall(
  cfg: TransparentProxyConfig,
  target: AttachTarget,
  bpffs: BpffsPlan,
  spec: EbpfSpec,
  hash: string,
  log: Logger,
): EngineResult {
  const journal = new Journal();
  const lines: string[] = [];
  let loaded: LoadedObjects | undefined;
  try {
    for (const dir of bpffs.createDirs) {
      mkdirSync(dir);
      journal.add(`mkdir ${dir}`, () => rmdirIfEmpty(dir));
    }
    if (bpffs.mount) {
      mountBpffs(bpffs.path);
      journal.add(`mount bpffs ${bpffs.path}`, () => unmount(bpffs.path));
      lines.push(`mounted bpffs at ${bpffs.path}`);
    }

    // Map pins that exist before the load are not ours to remove on rollback.
    const pinsBefore = new Set(MAP_SPECS.map((m) => mapPinPath(bpffs.path, m.name)).filter((p) => existsSync(p)));
    journal.add('pin maps', () => {
      for (const m of MAP_SPECS) {
        const pin = mapPinPath(bpffs.path, m.name);
        if (!pinsBefore.has(pin) && existsSync(pin)) unlinkSync(pin);
      }
    });
    loaded = openAndLoad(target.programsSourcePath, bpffs.path, cfg.verbose, mapCapacities(spec.maps));
    lines.push(`loaded ${spec.programs.length} programs from ${target.programsSourcePath}`);

    const sync = syncMaps(bpffs.path, spec.maps);
    lines.push(`maps pinned in ${bpffs.path}: ${sync.added + sync.updated} entries written`);

    const dir = linksDir(bpffs.path);
    if (!existsSync(dir)) {
      mkdirSync(dir);
      journal.add(`mkdir ${dir}`, () => rmdirIfEmpty(dir));
    }
    const links: EbpfState['links'] = [];
    for (const prog of spec.programs.filter((x) => x.hook === 'cgroup')) {
      const pin = linkPinPath(bpffs.path, prog.name);
      attachCgroupProgram(loaded, prog, target.cgroupPath, pin);
      journal.add(`attach ${prog.name}`, () => detachLink(pin));
      links.push({ program: prog.name, pin });
    }
    lines.push(`attached ${links.length} programs to cgroup ${target.cgroupPath}`);
    for (const prog of spec.programs.filter((x) => x.hook === 'netns')) {
      const pin = linkPinPath(bpffs.path, prog.name);
      attachNetnsProgram(loaded, prog, pin);
      journal.add(`attach ${prog.name}`, () => detachLink(pin));
      links.push({ program: prog.name, pin, netns: currentNetns() });
      lines.push(`attached ${prog.name} to network namespace ${currentNetns()}`);
    }
    failAt('after-cgroup-attach');

    let tc: EbpfState['tc'];
    if (target.tc) {
      const { iface, ifindex } = target.tc;
      tc = attachTc(loaded, iface, ifindex, () =>
        journal.add(`clsact on ${iface}`, () => tcHookDestroy(ifindex)),
      );
      journal.add(`tc filter on ${iface}`, () => undoTcAttach(ifindex));
      lines.push(`attached tp_tc_ingress to ${iface} ingress (handle 0x${tc.handle.toString(16)}, priority ${tc.priority})`);
    }
    if (spec.inbound) lines.push(...registerListeners(bpffs.path, cfg.inbound.port, cfg.kumaDpUser.uid));
    failAt('after-tc-attach');

    const state: EbpfState = {
      version: 1,
      configHash: hash,
      target,
      programs: spec.programs.map((x) => x.name),
      links,
      ...(tc ? { tc } : {}),
      bpffs: { mounted: bpffs.mount, createdDirs: bpffs.createDirs },
      installedAt: new Date().toISOString(),
      netnsCookie: specNetnsCookie(spec).toString(),
    };
    writeState(withSettings(state, cfg));
    journal.add('state record', () => removeState(bpffs.path));
    lines.push(`state recorded in ${statePinPath(bpffs.path)}`);
    return { changed: true, lines };
  } catch (e) {
    loaded?.close();
    loaded = undefined;
    const leftovers = journal.rollback(log);
    const cause = errorText(e);
    if (leftovers.length > 0) {
      throw new EngineError(`install failed: ${cause}; rollback incomplete: ${leftovers.join('; ')}`, { cause: e });
    }
    throw new EngineError(`install failed: ${cause}; nothing was left behind`, { cause: e });
  } finally {
    loaded?.close();
  }
}

function updateInPlace(state: EbpfState, spec: EbpfSpec, hash: string, log: Logger, cfg: TransparentProxyConfig, target: AttachTarget): EngineResult {
  const bpffsPath = state.target.bpffsPath;
  const names = spec.maps.map((m) => m.name);
  const before = snapshotMaps(bpffsPath, names);
  try {
    const r = syncMaps(bpffsPath, spec.maps);
    const listeners = spec.inbound ? registerListeners(bpffsPath, cfg.inbound.port, cfg.kumaDpUser.uid) : [];
    // An in-place update has no attach steps of its own; the fault points fire once
    // its real change (the maps) is made, so tests can prove the rollback.
    failAt('after-cgroup-attach');
    failAt('after-tc-attach');
    // The hash covers the target: record the one it was computed for (a moved objects directory, say).
    writeState(withSettings({ ...state, target, configHash: hash, installedAt: new Date().toISOString(), netnsCookie: specNetnsCookie(spec).toString() }, cfg));
    return {
      changed: true,
      lines: [`updated settings in place (${r.added} added, ${r.updated} changed, ${r.removed} removed); programs stay attached`, ...listeners],
    };
  } catch (e) {
    try {
      restoreMaps(bpffsPath, before);
    } catch (e2) {
      throw new EngineError(`install failed: ${errorText(e)}; restoring the previous settings failed too: ${errorText(e2)}`, { cause: e });
    }
    log.debug('previous map contents restored');
    throw new EngineError(`install failed: ${errorText(e)}; the previous settings were kept`, { cause: e });
  }
}

export async function installEbpf(cfg: TransparentProxyConfig, log: Logger): Promise<EngineResult> {
  if (cfg.dryRun) return { changed: false, lines: describeEbpfPlan(cfg).split('\n') };

  const pre = await preflightInstall(cfg);
  const spec = buildEbpfSpec(cfg, pre.hostHasIpv6, netnsCookie());
  for (const w of spec.warnings) log.warn(w);
  const hash = configHash(spec, pre.target);

  // A record can only be pinned where preflight found a bpffs already mounted.
  const existing = pre.bpffs.mount ? undefined : readState(pre.target.bpffsPath);
  if (existing) {
    // Drift (a detached link, a replaced program, a flushed map entry) makes a reinstall repair, not a no-op.
    const intact = stateIntact(existing) && (await attachmentFindings(existing)).length === 0;
    if (intact && existing.configHash === hash && mapFindings(existing, spec).length === 0 && listenerFindings(existing, spec).length === 0) {
      return { changed: false, lines: ['eBPF transparent proxy already installed with these settings'] };
    }
    const programs = spec.programs.map((x) => x.name);
    const sameAttach = intact && sameAttachment({ target: existing.target, programs: existing.programs }, { target: pre.target, programs });
    const outgrown = sameAttach ? outgrownMaps(existing.target.bpffsPath, spec) : [];
    if (sameAttach && outgrown.length === 0) return updateInPlace(existing, spec, hash, log, cfg, pre.target);
    // Attach points changed, the settings need bigger maps than the pinned ones (a
    // map's size is fixed when it is created), or the install was damaged: replace it.
    log.info(
      !intact
        ? 'existing eBPF install is incomplete: replacing it'
        : outgrown.length > 0
          ? `the settings need bigger maps (${outgrown.join(', ')}): replacing the existing eBPF install`
          : 'attach points changed: replacing the existing eBPF install',
    );
    // Pins live at fixed paths, so the old install must go before the new one loads.
    const removed = await removeInstall(existing, log);
    try {
      // Removing it may have unmounted the bpffs or removed directories: plan again.
      const bpffs = planBpffs(pre.target.bpffsPath, readMounts());
      const result = freshInstall(cfg, pre.target, bpffs, spec, hash, log);
      return { changed: true, lines: [...removed, ...result.lines] };
    } catch (e) {
      throw new EngineError(`${errorText(e)} (the previous install was removed first: no eBPF transparent proxy is installed now)`, { cause: e });
    }
  }
  return freshInstall(cfg, pre.target, pre.bpffs, spec, hash, log);
}

/** Removes everything a state record describes. Best effort: keeps going and reports what failed. */
async function removeInstall(state: EbpfState, log: Logger): Promise<string[]> {
  if (state.tc && state.tc.netns !== currentNetns()) {
    throw new PreflightError(
      `uninstall: the tc filter was attached in network namespace ${state.tc.netns}, this process runs in ${currentNetns()}`,
      { hint: 'run uninstall in the network namespace install ran in (nsenter --net=...)' },
    );
  }
  const bpffsPath = state.target.bpffsPath;
  const lines: string[] = [];
  const failures: string[] = [];
  const attempt = (what: string, fn: () => void): void => {
    try {
      fn();
    } catch (e) {
      failures.push(`${what}: ${errorText(e)}`);
    }
  };

  for (const l of state.links) attempt(`detach ${l.program}`, () => detachLink(l.pin));
  if (state.links.length > 0) lines.push(`detached ${state.links.length} programs from cgroup ${state.target.cgroupPath}`);
  if (state.tc) {
    const tc = state.tc;
    // Make sure the ifindex still names the interface we attached to before
    // touching it (and its qdisc): it may have been deleted and the index reused.
    const ifaces = await listInterfaces();
    if (ifaces.some((i) => i.ifindex === tc.ifindex && i.name === tc.iface)) {
      attempt(`tc filter on ${tc.iface}`, () => {
        for (const w of detachTc(tc)) log.warn(w);
      });
      lines.push(`removed tc filter from ${tc.iface} ingress${tc.createdClsact ? ' and its clsact qdisc' : ''}`);
    } else {
      log.warn(`interface ${tc.iface} (ifindex ${tc.ifindex}) is gone, and its tc filter with it`);
    }
  }
  attempt('unpin maps', () => {
    for (const m of MAP_SPECS) {
      const pin = mapPinPath(bpffsPath, m.name);
      if (existsSync(pin)) unlinkSync(pin);
    }
  });
  attempt(`rmdir ${linksDir(bpffsPath)}`, () => rmdirIfEmpty(linksDir(bpffsPath)));
  if (failures.length > 0) {
    // Keep the record (and the bpffs holding it) so a second uninstall can finish the job.
    throw new EngineError(`uninstall incomplete: ${failures.join('; ')}`, {
      hint: `the state record in ${statePinPath(bpffsPath)} was kept; rerun uninstall`,
    });
  }
  removeState(bpffsPath);
  lines.push(`removed pins from ${bpffsPath}`);
  if (state.bpffs.mounted) {
    // Someone else may have pinned into the bpffs we mounted; unmounting would drop their pins.
    const foreign = readdirSync(bpffsPath).filter((f) => !BPFFS_PRELOAD_ENTRIES.has(f));
    if (foreign.length > 0) {
      log.warn(`bpffs ${bpffsPath} left mounted: it holds pins that are not ours (${foreign.join(', ')})`);
      return lines;
    }
    unmount(bpffsPath);
    lines.push(`unmounted bpffs at ${bpffsPath}`);
  }
  for (const dir of [...state.bpffs.createdDirs].reverse()) rmdirIfEmpty(dir);
  return lines;
}

export async function uninstallEbpf(cfg: UninstallConfig, log: Logger): Promise<EngineResult> {
  const bpffsPath = resolve(cfg.ebpf.bpffsPath);
  if (!hasState(bpffsPath)) {
    return { changed: false, lines: [`no eBPF transparent proxy install found in ${bpffsPath}`] };
  }
  if (cfg.dryRun) return { changed: false, lines: describeRemoval(bpffsPath) };
  preflightUninstall();
  const state = readState(bpffsPath);
  if (!state) return { changed: false, lines: [`no eBPF transparent proxy install found in ${bpffsPath}`] };
  return { changed: true, lines: await removeInstall(state, log) };
}

/** Dry-run text for uninstall; reading the record needs privileges, so say less without them. */
function describeRemoval(bpffsPath: string): string[] {
  let state: EbpfState | undefined;
  try {
    state = readState(bpffsPath);
  } catch {
    return [`would remove the eBPF install recorded in ${statePinPath(bpffsPath)} (run as root for details)`];
  }
  if (!state) return [`no eBPF transparent proxy install found in ${bpffsPath}`];
  return [
    `would detach ${state.links.map((l) => l.program).join(', ')} from cgroup ${state.target.cgroupPath}`,
    ...(state.tc ? [`would remove the tc filter from ${state.tc.iface} ingress${state.tc.createdClsact ? ' and its clsact qdisc' : ''}`] : []),
    `would remove the pins in ${bpffsPath}${state.bpffs.mounted ? ' and unmount it' : ''}`,
  ];
}
