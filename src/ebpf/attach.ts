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
  tcAttachIngress,
  tcDetachIngress,
  tcHookCreate,
  tcHookDestroy,
  tcQueryIngress,
} from './libbpf.js';
import type { LoadedObjects } from './loader.js';
import { TC_HANDLE, TC_PRIORITY, type ProgramSpec } from './spec.js';
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

export function attachTc(loaded: LoadedObjects, iface: string, ifindex: number, onClsactCreated: () => void): TcRecord {
  const createdClsact = tcHookCreate(ifindex);
  if (createdClsact) onClsactCreated();
  let progId: number;
  try {
    progId = tcAttachIngress(ifindex, programFd(loaded.program('tp_tc_ingress')), TC_HANDLE, TC_PRIORITY);
  } catch (e) {
    if (e instanceof LibbpfError && e.errno === EEXIST) {
      throw new EngineError(
        `tc ${iface} ingress: a filter with handle 0x${TC_HANDLE.toString(16)} priority ${TC_PRIORITY} already exists`,
        {
          hint: `left by an install whose state was lost? remove it: tc filter del dev ${iface} ingress pref ${TC_PRIORITY} handle 0x${TC_HANDLE.toString(16)} bpf`,
          cause: e,
        },
      );
    }
    throw e;
  }
  return { iface, ifindex, handle: TC_HANDLE, priority: TC_PRIORITY, progId, createdClsact, netns: currentNetns() };
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
  let current: number | undefined;
  try {
    current = tcQueryIngress(rec.ifindex, rec.handle, rec.priority);
  } catch (e) {
    if (!(e instanceof LibbpfError)) throw e;
    current = undefined; // the interface is gone, and our filter with it
  }
  if (current === rec.progId) {
    tcDetachIngress(rec.ifindex, rec.handle, rec.priority);
  } else if (current !== undefined) {
    warnings.push(`tc ${rec.iface} ingress: the filter at handle 0x${rec.handle.toString(16)} runs program ${current}, not ours (${rec.progId}); left alone`);
  }
  if (rec.createdClsact) {
    try {
      tcHookDestroy(rec.ifindex);
    } catch (e) {
      // Already gone (ENOENT), or the interface with it (ENODEV/EINVAL).
      if (!(e instanceof LibbpfError) || ![ENOENT, ENODEV, EINVAL].includes(e.errno)) throw e;
    }
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
