/**
 * Attaching and detaching: cgroup programs through pinned bpf_links (they coexist
 * with other programs on the same hooks and outlive this process), the inbound
 * program as a tc direct-action filter on the clsact ingress hook.
 */
import { closeSync, existsSync, openSync, readlinkSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { EngineError, LibbpfError } from '../errors.js';
import {
  EEXIST,
  EINVAL,
  ENODEV,
  ENOENT,
  attachCgroupPinned,
  attachNetnsPinned,
  detachPinnedLink,
  programFd,
  programNameById,
  tcAttachIngress,
  tcDetachIngress,
  tcHookDestroy,
  tcQueryIngress,
} from './libbpf.js';
import type { LoadedObjects } from './loader.js';
import { TC_HANDLE, TC_PRIORITY, TC_PROGRAM, type AttachTarget, type ProgramSpec } from './spec.js';
import type { TcRecord } from './state.js';

/** Identity of this process's network namespace, e.g. `net:[4026531840]`. */
export function currentNetns(): string {
  return readlinkSync('/proc/self/ns/net');
}

export function linksDir(bpffsPath: string): string {
  return join(bpffsPath, 'links');
}

export function linkPinPath(bpffsPath: string, program: string): string {
  return join(linksDir(bpffsPath), program);
}

/** Attaches one cgroup program and pins its link at `pin`. */
export function attachCgroupProgram(
  loaded: LoadedObjects,
  prog: ProgramSpec,
  cgroupPath: string,
  pin: string,
): void {
  // The kernel wants an fd of the cgroup directory itself; O_RDONLY works on directories.
  const cgroupFd = openSync(cgroupPath, 'r');
  try {
    attachCgroupPinned(loaded.program(prog.name), cgroupFd, pin);
  } finally {
    closeSync(cgroupFd);
  }
}

/** Attaches one network-namespace program (sk_lookup) to this process's netns and pins its link at `pin`. */
export function attachNetnsProgram(loaded: LoadedObjects, prog: ProgramSpec, pin: string): void {
  const netnsFd = openSync('/proc/self/ns/net', 'r');
  try {
    attachNetnsPinned(loaded.program(prog.name), netnsFd, pin);
  } finally {
    closeSync(netnsFd);
  }
}

/** Attaches a program of any linked hook (spec.ts linkedPrograms) and pins its link at `pin`. */
export function attachLinked(loaded: LoadedObjects, prog: ProgramSpec, target: AttachTarget, pin: string): void {
  switch (prog.hook) {
    case 'cgroup':
      attachCgroupProgram(loaded, prog, target.cgroupPath, pin);
      return;
    case 'netns':
      attachNetnsProgram(loaded, prog, pin);
      return;
    default:
      throw new EngineError(`program ${prog.name}: hook ${prog.hook} is not attached through a link`);
  }
}

/** Detaches and unpins one link; a pin that is already gone is fine. */
export function detachLink(pin: string): void {
  if (!existsSync(pin)) return;
  try {
    detachPinnedLink(pin);
  } catch (e) {
    // ENOLINK-like states (the cgroup was removed) still need the pin removed.
    if (!(e instanceof LibbpfError)) throw e;
  }
  unlinkSync(pin);
}

/** Adds our ingress filter (the clsact qdisc must exist); returns the attached program id. */
export function attachTcFilter(loaded: LoadedObjects, iface: string, ifindex: number): number {
  try {
    return tcAttachIngress(ifindex, programFd(loaded.program(TC_PROGRAM)), TC_HANDLE, TC_PRIORITY);
  } catch (e) {
    if (e instanceof LibbpfError && e.errno === EEXIST) {
      throw new EngineError(
        `tc ${iface} ingress: a filter with handle 0x${TC_HANDLE.toString(16)} priority ${TC_PRIORITY} already exists`,
        {
          hint: `not tpctl's (its program is not ${TC_PROGRAM}): remove it: tc filter del dev ${iface} ingress pref ${TC_PRIORITY} handle 0x${TC_HANDLE.toString(16)} bpf`,
          cause: e,
        },
      );
    }
    throw e;
  }
}

/**
 * The program id of the filter at our handle and priority when it is ours: the
 * recorded id, or (the record does not know it: the install was killed between attach
 * and record) a program named like our tc program.
 */
export function ourTcFilter(ifindex: number, recordedProgId: number): number | undefined {
  let current: number | undefined;
  try {
    current = tcQueryIngress(ifindex, TC_HANDLE, TC_PRIORITY);
  } catch (e) {
    if (!(e instanceof LibbpfError)) throw e;
    return undefined; // the interface is gone, and any filter with it
  }
  if (current === undefined) return undefined;
  if (recordedProgId !== 0) return current === recordedProgId ? current : undefined;
  return programNameById(current) === TC_PROGRAM ? current : undefined;
}

/** Whether our filter (same program id) is still there. */
export function tcFilterPresent(rec: TcRecord): boolean {
  try {
    return tcQueryIngress(rec.ifindex, rec.handle, rec.priority) === rec.progId;
  } catch {
    return false;
  }
}

/**
 * Removes our filter if it still runs our program, then the clsact qdisc if we
 * created it. Returns warnings for things deliberately left alone.
 */
export function detachTc(rec: TcRecord): string[] {
  const warnings: string[] = [];
  const ours = ourTcFilter(rec.ifindex, rec.progId);
  if (ours !== undefined) {
    tcDetachIngress(rec.ifindex, rec.handle, rec.priority);
  } else {
    let current: number | undefined;
    try {
      current = tcQueryIngress(rec.ifindex, rec.handle, rec.priority);
    } catch {
      current = undefined;
    }
    if (current !== undefined) {
      warnings.push(`tc ${rec.iface} ingress: the filter at handle 0x${rec.handle.toString(16)} runs program ${current}, not ours (${rec.progId}); left alone`);
    }
  }
  if (rec.createdClsact === true) {
    try {
      tcHookDestroy(rec.ifindex);
    } catch (e) {
      // Already gone (ENOENT), or the interface with it (ENODEV/EINVAL).
      if (!(e instanceof LibbpfError) || ![ENOENT, ENODEV, EINVAL].includes(e.errno)) throw e;
    }
  } else if (rec.createdClsact === null) {
    warnings.push(
      `tc ${rec.iface}: the interrupted install may have created its clsact qdisc; left in place (it holds none of our filters; tc qdisc del dev ${rec.iface} clsact removes it)`,
    );
  }
  return warnings;
}

/** Undo for a fresh attach: detach our filter (by handle/priority), no program-id check needed. */
export function undoTcAttach(ifindex: number): void {
  try {
    tcDetachIngress(ifindex, TC_HANDLE, TC_PRIORITY);
  } catch (e) {
    if (!(e instanceof LibbpfError) || e.errno !== ENOENT) throw e;
  }
}
