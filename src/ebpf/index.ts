/**
 * The eBPF engine: install / uninstall the transparent proxy with programs loaded
 * through libbpf, attached to a cgroup v2 (pinned bpf_links) and to tc ingress.
 *
 * install:   preflight → finish what a killed earlier run left (journal, an
 *            unfinished record, orphan pins) → (same settings installed: nothing to do)
 *            → (installed, same attach points: update maps in place)
 *            → fresh: bpffs journal → mkdir (0700) / mount bpffs (mode=0700) →
 *              record (phase installing, every planned link) → load objects (maps
 *              pinned by name) → fill maps → attach + pin cgroup links → clsact +
 *              tc filter (recorded as they happen) → record phase installed.
 *            A failure rolls every change back (newest first); a kill leaves the
 *            record saying how far it got, and the next install or uninstall
 *            removes that before doing its own work.
 * uninstall: record phase removing → detach links → tc → unpin maps → bpffs
 *            journal → remove record → unmount → rmdir → remove journal. Each step
 *            leaves a state the next uninstall (or install) can finish from.
 *
 * Crash-safety tests stop the real CLI at each `steps.reached(...)` and kill it.
 */
import { existsSync, lstatSync, mkdirSync, readdirSync, rmdirSync, unlinkSync } from 'node:fs';
import { resolve } from 'node:path';
import { EngineError, PreflightError, TpError } from '../errors.js';
import type { Logger, TransparentProxyConfig, UninstallConfig } from '../config/types.js';
import type { EngineResult } from '../engine.js';
import { readMounts, mountBpffs, unmount } from '../host/mounts.js';
import { listInterfaces } from '../host/interfaces.js';
import { Steps } from '../steps.js';
import { preflightInstall, preflightUninstall, planBpffs, type BpffsPlan } from './preflight.js';
import {
  MAP_SPECS,
  mapCapacities,
  TC_HANDLE,
  TC_PRIORITY,
  buildEbpfSpec,
  describeEbpfPlan,
  configHash,
  linkedPrograms,
  sameAttachment,
  specNetnsCookie,
  unusedPrograms,
  type AttachTarget,
  type EbpfSpec,
} from './spec.js';
import { openAndLoad, type LoadedObjects } from './loader.js';
import { registerListeners } from './listeners.js';
import { netnsIdentity } from './netns-check.js';
import { mapPinPath, pinnedCapacities, restoreMaps, snapshotMaps, syncMaps } from './maps.js';
import {
  attachLinked,
  attachTcFilter,
  currentNetns,
  detachLink,
  detachTc,
  linkPinPath,
  linksDir,
  ourTcFilter,
  tcFilterPresent,
  undoTcAttach,
} from './attach.js';
import { tcDetachIngress, tcHookCreate, tcHookDestroy } from './libbpf.js';
import { attachmentFindings, listenerFindings, mapFindings } from './status.js';
import { hasState, phaseOf, readState, removeState, statePinPath, withSettings, writeState, type EbpfState } from './state.js';
import { BPFFS_PRELOAD_ENTRIES, holdsOurPins, inventoryPins } from './pin-dir.js';
import { DEFAULT_STATE_DIR, readBpffsJournal, removeBpffsJournal, writeBpffsJournal, type BpffsJournal } from './bpffs-journal.js';

export { buildEbpfSpec, describeEbpfPlan } from './spec.js';
export type { EbpfState } from './state.js';

export interface EbpfOptions {
  /** Step hooks (tests stop or fail the engine at a named step). */
  steps?: Steps;
  /** Where the bpffs journal lives (default /run/tpctl). */
  stateDir?: string;
}

interface Ctx {
  log: Logger;
  steps: Steps;
  stateDir: string;
}

function context(log: Logger, opts: EbpfOptions): Ctx {
  return { log, steps: opts.steps ?? new Steps(), stateDir: opts.stateDir ?? DEFAULT_STATE_DIR };
}

/**
 * Whether anything of an eBPF install is at bpffsPath: a record, pins of ours left
 * by an interrupted install, or a journal of a bpffs tpctl mounted there.
 */
export function hasEbpfInstall(bpffsPath: string, stateDir = DEFAULT_STATE_DIR): boolean {
  const abs = resolve(bpffsPath);
  try {
    return hasState(abs) || holdsOurPins(inventoryPins(abs)) || readBpffsJournal(stateDir, abs) !== undefined;
  } catch (e) {
    // The pin directory is root-only: without privileges, a directory that is there counts.
    if ((e as NodeJS.ErrnoException).code === 'EACCES') return true;
    return hasState(abs);
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

function rmdirIfEmpty(dir: string): boolean {
  if (existsSync(dir) && readdirSync(dir).length === 0) {
    rmdirSync(dir);
    return true;
  }
  return false;
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

function bpffsJournalOf(state: EbpfState): BpffsJournal {
  return { bpffsPath: state.target.bpffsPath, mounted: state.bpffs.mounted, createdDirs: state.bpffs.createdDirs };
}

function freshInstall(cfg: TransparentProxyConfig, target: AttachTarget, bpffs: BpffsPlan, spec: EbpfSpec, hash: string, ctx: Ctx): EngineResult {
  const { log, steps, stateDir } = ctx;
  const undo = new Journal();
  const lines: string[] = [];
  let loaded: LoadedObjects | undefined;
  const journal: BpffsJournal = { bpffsPath: bpffs.path, mounted: bpffs.mount, createdDirs: bpffs.createDirs };
  const needsJournal = bpffs.mount || bpffs.createDirs.length > 0;
  try {
    if (needsJournal) {
      writeBpffsJournal(stateDir, journal);
      undo.add('bpffs journal', () => removeBpffsJournal(stateDir, bpffs.path));
      steps.reached('bpffs-journal-written');
    }
    for (const dir of bpffs.createDirs) {
      mkdirSync(dir, { mode: 0o700 });
      undo.add(`mkdir ${dir}`, () => rmdirIfEmpty(dir));
      steps.reached('dir-created');
    }
    if (bpffs.mount) {
      mountBpffs(bpffs.path);
      undo.add(`mount bpffs ${bpffs.path}`, () => unmount(bpffs.path));
      lines.push(`mounted bpffs at ${bpffs.path} (mode 0700)`);
      steps.reached('bpffs-mounted');
    }

    // The record comes before the first pin: whatever happens next, it says what to remove.
    const linked = linkedPrograms(spec.programs);
    const state: EbpfState = {
      version: 1,
      phase: 'installing',
      configHash: '',
      target,
      programs: spec.programs.map((x) => x.name),
      links: linked.map((p) => ({ program: p.name, pin: linkPinPath(bpffs.path, p.name), ...(p.hook === 'netns' ? { netns: currentNetns() } : {}) })),
      bpffs: { mounted: bpffs.mount, createdDirs: bpffs.createDirs },
      installedAt: new Date().toISOString(),
    };
    writeState(state);
    undo.add('state record', () => {
      // The journal takes over from the record before the record goes.
      if (needsJournal) writeBpffsJournal(stateDir, journal);
      removeState(bpffs.path);
    });
    steps.reached('record-written');
    if (needsJournal) {
      removeBpffsJournal(stateDir, bpffs.path);
      steps.reached('bpffs-journal-removed');
    }

    // Map pins that exist before the load are not ours to remove on rollback.
    const pinsBefore = new Set(MAP_SPECS.map((m) => mapPinPath(bpffs.path, m.name)).filter((p) => existsSync(p)));
    undo.add('pin maps', () => {
      for (const m of MAP_SPECS) {
        const pin = mapPinPath(bpffs.path, m.name);
        if (!pinsBefore.has(pin) && existsSync(pin)) unlinkSync(pin);
      }
    });
    loaded = openAndLoad(target.programsSourcePath, bpffs.path, cfg.verbose, mapCapacities(spec.maps), unusedPrograms(spec.netnsCheck));
    lines.push(`loaded ${spec.programs.length} programs from ${target.programsSourcePath}`);
    steps.reached('maps-pinned');

    const sync = syncMaps(bpffs.path, spec.maps);
    lines.push(`maps pinned in ${bpffs.path}: ${sync.added + sync.updated} entries written`);
    steps.reached('maps-filled');

    const dir = linksDir(bpffs.path);
    if (!existsSync(dir)) {
      mkdirSync(dir, { mode: 0o700 });
      undo.add(`mkdir ${dir}`, () => rmdirIfEmpty(dir));
      steps.reached('links-dir-created');
    }
    for (const link of state.links) {
      const prog = linked.find((p) => p.name === link.program)!;
      attachLinked(loaded, prog, target, link.pin);
      undo.add(`attach ${prog.name}`, () => detachLink(link.pin));
      steps.reached(`attached-${prog.name}`);
    }
    const toCgroup = linked.filter((p) => p.hook === 'cgroup').length;
    lines.push(`attached ${toCgroup} programs to cgroup ${target.cgroupPath}`);
    for (const prog of linked.filter((p) => p.hook === 'netns')) lines.push(`attached ${prog.name} to network namespace ${currentNetns()}`);
    steps.reached('after-cgroup-attach');

    if (target.tc) {
      const { iface, ifindex } = target.tc;
      const tc: NonNullable<EbpfState['tc']> = {
        iface,
        ifindex,
        handle: TC_HANDLE,
        priority: TC_PRIORITY,
        progId: 0,
        createdClsact: null,
        netns: currentNetns(),
      };
      state.tc = tc;
      writeState(state);
      tc.createdClsact = tcHookCreate(ifindex);
      if (tc.createdClsact) undo.add(`clsact on ${iface}`, () => tcHookDestroy(ifindex));
      writeState(state);
      steps.reached('tc-hook-ready');
      tc.progId = attachTcFilter(loaded, iface, ifindex);
      undo.add(`tc filter on ${iface}`, () => undoTcAttach(ifindex));
      writeState(state);
      lines.push(`attached tp_tc_ingress to ${iface} ingress (handle 0x${tc.handle.toString(16)}, priority ${tc.priority})`);
      steps.reached('tc-attached');
    }
    if (spec.inbound) {
      // A map entry only (a proxy already listening): the record's map pins cover it.
      lines.push(...registerListeners(bpffs.path, cfg.inbound.port, cfg.kumaDpUser.uid));
      steps.reached('listeners-registered');
    }
    steps.reached('after-tc-attach');

    state.phase = 'installed';
    state.configHash = hash;
    state.netnsCookie = specNetnsCookie(spec).toString();
    writeState(withSettings(state, cfg));
    lines.push(`state recorded in ${statePinPath(bpffs.path)}`);
    steps.reached('installed');
    return { changed: true, lines };
  } catch (e) {
    loaded?.close();
    loaded = undefined;
    const leftovers = undo.rollback(log);
    const cause = errorText(e);
    if (leftovers.length > 0) {
      throw new EngineError(`install failed: ${cause}; rollback incomplete: ${leftovers.join('; ')}`, {
        cause: e,
        hint: 'run `tpctl uninstall transparent-proxy` to remove what is left',
      });
    }
    throw new EngineError(`install failed: ${cause}; nothing was left behind`, { cause: e });
  } finally {
    loaded?.close();
  }
}

function updateInPlace(cfg: TransparentProxyConfig, state: EbpfState, spec: EbpfSpec, hash: string, ctx: Ctx, target: AttachTarget): EngineResult {
  const bpffsPath = state.target.bpffsPath;
  const names = spec.maps.map((m) => m.name);
  const before = snapshotMaps(bpffsPath, names);
  try {
    const r = syncMaps(bpffsPath, spec.maps);
    const listeners = spec.inbound ? registerListeners(bpffsPath, cfg.inbound.port, cfg.kumaDpUser.uid) : [];
    // A kill here leaves the old hash in the record: the next install syncs the maps again.
    ctx.steps.reached('maps-updated');
    // An in-place update has no attach steps of its own; the fault points fire once
    // its real change (the maps) is made, so tests can prove the rollback.
    ctx.steps.reached('after-cgroup-attach');
    ctx.steps.reached('after-tc-attach');
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
    ctx.log.debug('previous map contents restored');
    throw new EngineError(`install failed: ${errorText(e)}; the previous settings were kept`, { cause: e });
  }
}

/**
 * Brings bpffsPath back to a known state when a killed run left it in between: an
 * unfinished record (its install or uninstall is completed as an uninstall), pins of
 * ours without a record, a journal of a bpffs or directories no record describes.
 * Returns what it found and did; empty when there was nothing to repair.
 */
async function repairInterrupted(bpffsPath: string, ctx: Ctx): Promise<string[]> {
  const lines: string[] = [];
  const mountedHere = readMounts().some((m) => m.fsType === 'bpf' && m.mountPoint === bpffsPath);
  const onBpffs = mountedHere || hasState(bpffsPath);
  const state = onBpffs ? readState(bpffsPath) : undefined;
  if (state && phaseOf(state) !== 'installed') {
    const doing = phaseOf(state) === 'installing' ? 'an install' : 'an uninstall';
    lines.push(`found ${doing} that was interrupted (record in ${statePinPath(bpffsPath)}): removing what it left`);
    lines.push(...(await removeInstall(state, ctx)));
    return lines;
  }
  if (!state) {
    const inv = inventoryPins(bpffsPath);
    if (holdsOurPins(inv)) {
      lines.push(`found tpctl pins without an install record in ${bpffsPath}: removing them`);
      lines.push(...(await removeOrphans(bpffsPath, inv, ctx)));
    }
    const journal = readBpffsJournal(ctx.stateDir, bpffsPath);
    if (journal) {
      lines.push(`found the bpffs journal of an interrupted run for ${bpffsPath}: finishing its cleanup`);
      lines.push(...finishBpffs(journal, ctx));
    }
  } else {
    // A complete record and a journal: the record says the same; the journal is stale.
    removeBpffsJournal(ctx.stateDir, bpffsPath);
  }
  return lines;
}

export async function installEbpf(cfg: TransparentProxyConfig, log: Logger, opts: EbpfOptions = {}): Promise<EngineResult> {
  if (cfg.dryRun) return { changed: false, lines: describeEbpfPlan(cfg).split('\n') };
  const ctx = context(log, opts);

  let pre = await preflightInstall(cfg);
  const spec = buildEbpfSpec(cfg, pre.hostHasIpv6, netnsIdentity(pre.netnsCheck), pre.netnsCheck);
  for (const w of spec.warnings) log.warn(w);

  const repaired = await repairInterrupted(pre.target.bpffsPath, ctx);
  if (repaired.length > 0) pre = { ...pre, bpffs: planBpffs(pre.target.bpffsPath, readMounts()) };
  const hash = configHash(spec, pre.target);
  const withRepair = (r: EngineResult): EngineResult => ({ changed: r.changed || repaired.length > 0, lines: [...repaired, ...r.lines] });

  // A record can only be pinned where a bpffs is already mounted.
  const existing = pre.bpffs.mount ? undefined : readState(pre.target.bpffsPath);
  if (existing) {
    // Drift (a detached link, a replaced program, a flushed map entry) makes a reinstall repair, not a no-op.
    const intact = stateIntact(existing) && (await attachmentFindings(existing)).length === 0;
    if (intact && existing.configHash === hash && mapFindings(existing, spec).length === 0 && listenerFindings(existing, spec).length === 0) {
      return withRepair({ changed: false, lines: ['eBPF transparent proxy already installed with these settings'] });
    }
    const programs = spec.programs.map((x) => x.name);
    const sameAttach = intact && sameAttachment({ target: existing.target, programs: existing.programs }, { target: pre.target, programs });
    const outgrown = sameAttach ? outgrownMaps(existing.target.bpffsPath, spec) : [];
    if (sameAttach && outgrown.length === 0) return withRepair(updateInPlace(cfg, existing, spec, hash, ctx, pre.target));
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
    const removed = await removeInstall(existing, ctx);
    try {
      // Removing it may have unmounted the bpffs or removed directories: plan again.
      const bpffs = planBpffs(pre.target.bpffsPath, readMounts());
      const result = freshInstall(cfg, pre.target, bpffs, spec, hash, ctx);
      return withRepair({ changed: true, lines: [...removed, ...result.lines] });
    } catch (e) {
      throw new EngineError(`${errorText(e)} (the previous install was removed first: no eBPF transparent proxy is installed now)`, { cause: e });
    }
  }
  return withRepair(freshInstall(cfg, pre.target, pre.bpffs, spec, hash, ctx));
}

/** Detaches the link behind a pin; a symlink planted in its place is only removed, never followed. */
function detachLinkPin(pin: string): void {
  let st;
  try {
    st = lstatSync(pin);
  } catch {
    return;
  }
  if (st.isSymbolicLink()) unlinkSync(pin);
  else detachLink(pin);
}

function unpinMaps(bpffsPath: string): void {
  for (const m of MAP_SPECS) {
    const pin = mapPinPath(bpffsPath, m.name);
    if (existsSync(pin) || isSymlink(pin)) unlinkSync(pin);
  }
}

function isSymlink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}

/**
 * Unmounts the bpffs tpctl mounted and removes the directories it created, as the
 * journal lists them, then the journal. Each step is idempotent.
 */
function finishBpffs(journal: BpffsJournal, ctx: Ctx): string[] {
  const lines: string[] = [];
  const path = journal.bpffsPath;
  const mountedHere = readMounts().some((m) => m.fsType === 'bpf' && m.mountPoint === path);
  if (journal.mounted && mountedHere) {
    // Someone else may have pinned into the bpffs we mounted; unmounting would drop their pins.
    const foreign = readdirSync(path).filter((f) => !BPFFS_PRELOAD_ENTRIES.has(f));
    if (foreign.length > 0) {
      ctx.log.warn(`bpffs ${path} left mounted: it holds pins that are not ours (${foreign.slice(0, 3).join(', ')})`);
      removeBpffsJournal(ctx.stateDir, path);
      return lines;
    }
    unmount(path);
    lines.push(`unmounted bpffs at ${path}`);
    ctx.steps.reached('bpffs-unmounted');
  }
  for (const dir of [...journal.createdDirs].reverse()) {
    if (rmdirIfEmpty(dir)) {
      lines.push(`removed directory ${dir}`);
      ctx.steps.reached('dir-removed');
    }
  }
  removeBpffsJournal(ctx.stateDir, path);
  ctx.steps.reached('bpffs-journal-removed');
  return lines;
}

/** Removes everything a state record describes (and any pin of ours beside it). Best effort: keeps going and reports what failed. */
async function removeInstall(state: EbpfState, ctx: Ctx): Promise<string[]> {
  const { log, steps, stateDir } = ctx;
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

  // From here on a kill leaves a record that says: finish removing me.
  writeState({ ...state, phase: 'removing' });
  steps.reached('record-removing');

  // Recorded links, plus any pin of ours in links/ the record does not list.
  const pins = new Map(state.links.map((l) => [l.pin, l.program]));
  for (const pin of inventoryPins(bpffsPath).links) if (!pins.has(pin)) pins.set(pin, pin.slice(pin.lastIndexOf('/') + 1));
  let detached = 0;
  for (const [pin, program] of pins) {
    if (!existsSync(pin) && !isSymlink(pin)) continue;
    attempt(`detach ${program}`, () => detachLinkPin(pin));
    detached++;
    steps.reached(`detached-${program}`);
  }
  if (detached > 0) lines.push(`detached ${detached} programs from cgroup ${state.target.cgroupPath}`);
  if (state.tc) {
    const tc = state.tc;
    // Make sure the ifindex still names the interface we attached to before
    // touching it (and its qdisc): it may have been deleted and the index reused.
    const ifaces = await listInterfaces();
    if (ifaces.some((i) => i.ifindex === tc.ifindex && i.name === tc.iface)) {
      const filter = ourTcFilter(tc.ifindex, tc.progId) !== undefined;
      attempt(`tc filter on ${tc.iface}`, () => {
        for (const w of detachTc(tc)) log.warn(w);
      });
      const what = [filter ? 'tc filter' : '', tc.createdClsact === true ? 'clsact qdisc' : ''].filter(Boolean).join(' and its ');
      if (what) lines.push(`removed ${what} from ${tc.iface}`);
      steps.reached('tc-detached');
    } else {
      log.warn(`interface ${tc.iface} (ifindex ${tc.ifindex}) is gone, and its tc filter with it`);
    }
  }
  attempt('unpin maps', () => unpinMaps(bpffsPath));
  steps.reached('maps-unpinned');
  attempt(`rmdir ${linksDir(bpffsPath)}`, () => {
    if (rmdirIfEmpty(linksDir(bpffsPath))) steps.reached('links-dir-removed');
  });
  if (failures.length > 0) {
    // Keep the record (and the bpffs holding it) so a second uninstall can finish the job.
    throw new EngineError(`uninstall incomplete: ${failures.join('; ')}`, {
      hint: `the state record in ${statePinPath(bpffsPath)} was kept; rerun uninstall`,
    });
  }
  const journal = bpffsJournalOf(state);
  const needsJournal = journal.mounted || journal.createdDirs.length > 0;
  if (needsJournal) {
    writeBpffsJournal(stateDir, journal);
    steps.reached('bpffs-journal-written');
  }
  removeState(bpffsPath);
  lines.push(`removed pins from ${bpffsPath}`);
  steps.reached('record-removed');
  if (needsJournal) lines.push(...finishBpffs(journal, ctx));
  return lines;
}

/**
 * Pins of ours with no record beside them (an install from before records came
 * first, or a record removed by hand): detach and unpin by name, and remove a tc
 * filter of ours from any interface of this network namespace.
 */
async function removeOrphans(bpffsPath: string, inv: ReturnType<typeof inventoryPins>, ctx: Ctx): Promise<string[]> {
  const lines: string[] = [];
  for (const pin of inv.links) {
    detachLinkPin(pin);
    ctx.steps.reached(`detached-${pin.slice(pin.lastIndexOf('/') + 1)}`);
  }
  if (inv.links.length > 0) lines.push(`detached ${inv.links.length} programs (by their link pins in ${linksDir(bpffsPath)})`);
  for (const iface of await listInterfaces()) {
    if (ourTcFilter(iface.ifindex, 0) === undefined) continue;
    tcDetachIngress(iface.ifindex, TC_HANDLE, TC_PRIORITY);
    lines.push(`removed tc filter from ${iface.name} ingress (its clsact qdisc is left: no record says who created it)`);
    ctx.steps.reached('tc-detached');
  }
  unpinMaps(bpffsPath);
  if (inv.maps.length > 0) lines.push(`unpinned ${inv.maps.length} maps from ${bpffsPath}`);
  ctx.steps.reached('maps-unpinned');
  if (rmdirIfEmpty(linksDir(bpffsPath))) ctx.steps.reached('links-dir-removed');
  return lines;
}

export async function uninstallEbpf(cfg: UninstallConfig, log: Logger, opts: EbpfOptions = {}): Promise<EngineResult> {
  const ctx = context(log, opts);
  const bpffsPath = resolve(cfg.ebpf.bpffsPath);
  if (!hasEbpfInstall(bpffsPath, ctx.stateDir)) {
    return { changed: false, lines: [`no eBPF transparent proxy install found in ${bpffsPath}`] };
  }
  if (cfg.dryRun) return { changed: false, lines: describeRemoval(bpffsPath) };
  preflightUninstall();
  const state = hasState(bpffsPath) ? readState(bpffsPath) : undefined;
  if (state && phaseOf(state) === 'installed') return { changed: true, lines: await removeInstall(state, ctx) };
  // Interrupted: an unfinished record, orphan pins, or a journal.
  const lines = await repairInterrupted(bpffsPath, ctx);
  return { changed: lines.length > 0, lines: lines.length > 0 ? lines : [`no eBPF transparent proxy install found in ${bpffsPath}`] };
}

/** Dry-run text for uninstall; reading the record needs privileges, so say less without them. */
function describeRemoval(bpffsPath: string): string[] {
  let state: EbpfState | undefined;
  try {
    state = readState(bpffsPath);
  } catch {
    return [`would remove the eBPF install recorded in ${statePinPath(bpffsPath)} (run as root for details)`];
  }
  if (!state) return [`would remove what an interrupted eBPF install or uninstall left in ${bpffsPath}`];
  const interrupted = phaseOf(state) === 'installed' ? '' : ` (interrupted while ${phaseOf(state)})`;
  return [
    `would detach ${state.links.map((l) => l.program).join(', ')} from cgroup ${state.target.cgroupPath}${interrupted}`,
    ...(state.tc ? [`would remove the tc filter from ${state.tc.iface} ingress${state.tc.createdClsact === true ? ' and its clsact qdisc' : ''}`] : []),
    `would remove the pins in ${bpffsPath}${state.bpffs.mounted ? ' and unmount it' : ''}`,
  ];
}

