/**
 * `tpctl status` for the eBPF engine: what the state record says was installed,
 * compared with what is attached and pinned now. Read-only: links, programs and
 * maps are only opened and inspected (the shipped objects are loaded privately to
 * learn their program tags, see tags.ts).
 */
import { closeSync, existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { toConfigFile } from '../config/to-file.js';
import type { EngineStatus, Finding, StatusEngine, StatusQuery } from '../engine.js';
import { listInterfaces } from '../host/interfaces.js';
import { currentNetns } from './attach.js';
import { BPF_LINK_TYPE, BPF_MAP_TYPE, linkIdentity, mapLookup, objGet, progFdById, progIdentity, tcQueryIngress } from './libbpf.js';
import { mapPinPath, readMapEntries } from './maps.js';
import { buildEbpfSpec, configHash, MAP_SPECS, PROGRAM_SPECS, SOCKOPS_PROGRAM, unusedPrograms, type EbpfSpec, type Hook, type NetnsCheck } from './spec.js';
import { netnsCookie } from '../host/libc.js';
import { findListeners, LISTENER_KEY } from './listeners.js';
import { u32Key } from './codecs.js';
import { hasState, readState, statePinPath, type EbpfState } from './state.js';
import { readCounters, STATS_MAP } from './stats.js';
import { shippedProgramTags } from './tags.js';

/** The command that puts a damaged install back (a reinstall with the same settings repairs any drift). */
export function ebpfRepair(state: EbpfState): string {
  return state.settings
    ? `tpctl status transparent-proxy --ebpf-bpffs-path ${state.target.bpffsPath} --settings | tpctl install transparent-proxy --config -`
    : `tpctl uninstall transparent-proxy --ebpf-bpffs-path ${state.target.bpffsPath}, then install again with your settings`;
}

function tagOf(progId: number): string {
  const fd = progFdById(progId);
  try {
    return progIdentity(fd).tag;
  } finally {
    closeSync(fd);
  }
}

function programHook(program: string): Hook | undefined {
  return PROGRAM_SPECS.find((x) => x.name === program)?.hook;
}

/** `net:[4026531840]` → 4026531840. */
function netnsIno(netns: string): number | undefined {
  const m = /\[(\d+)\]/.exec(netns);
  return m ? Number(m[1]) : undefined;
}

/** Links, programs, cgroup, tc filter and interface: what makes traffic reach the programs. */
export async function attachmentFindings(state: EbpfState): Promise<Finding[]> {
  const repair = ebpfRepair(state);
  const out: Finding[] = [];
  const add = (problem: string): void => void out.push({ problem, repair });
  let shipped: Map<string, string> | undefined;
  try {
    shipped = shippedProgramTags(state.target.programsSourcePath, unusedPrograms(recordedNetnsCheck(state)));
  } catch (e) {
    add(`cannot read the shipped objects in ${state.target.programsSourcePath}: ${(e as Error).message}`);
  }
  const checkTag = (program: string, progId: number): void => {
    const want = shipped?.get(program);
    const have = tagOf(progId);
    if (want && have !== want) add(`${program}: the attached program (id ${progId}, tag ${have}) differs from the shipped one (tag ${want})`);
  };

  const cgroup = state.target.cgroupPath;
  let cgroupIno: bigint | undefined;
  try {
    cgroupIno = BigInt(statSync(cgroup).ino);
  } catch {
    out.push({ problem: `cgroup ${cgroup} is gone: the cgroup programs redirect nothing`, repair: `mkdir ${cgroup} (and move the workloads back into it), then: ${repair}` });
  }
  for (const l of state.links) {
    if (!existsSync(l.pin)) {
      add(`${l.program}: link pin ${l.pin} is missing (the program is detached)`);
      continue;
    }
    const fd = objGet(l.pin);
    try {
      const link = linkIdentity(fd);
      if (programHook(l.program) === 'netns') {
        // A network namespace is named by its inode; the record keeps the one attach ran in.
        const want = netnsIno(l.netns ?? state.tc?.netns ?? currentNetns());
        if (link.type !== BPF_LINK_TYPE.NETNS) add(`${l.program}: ${l.pin} is not a network namespace link (link type ${link.type})`);
        else if (link.netnsIno === 0) add(`${l.program}: link ${l.pin} is detached from its network namespace: inbound connections to other local addresses bypass the proxy`);
        else if (want !== undefined && link.netnsIno !== want) add(`${l.program}: link ${l.pin} is attached to another network namespace (inode ${link.netnsIno}, installed in ${want})`);
      } else if (link.type !== BPF_LINK_TYPE.CGROUP) {
        add(`${l.program}: ${l.pin} is not a cgroup link (link type ${link.type})`);
      } else if (link.cgroupId === 0n) add(`${l.program}: link ${l.pin} is detached from its cgroup`);
      else if (cgroupIno !== undefined && link.cgroupId !== cgroupIno) add(`${l.program}: link ${l.pin} is attached to another cgroup (id ${link.cgroupId})`);
      checkTag(l.program, link.progId);
    } finally {
      closeSync(fd);
    }
  }
  if (state.tc) {
    const tc = state.tc;
    if (tc.netns !== currentNetns()) {
      add(`the tc filter is in network namespace ${tc.netns}, status runs in ${currentNetns()}: run status there (nsenter --net=...)`);
    } else if (!(await listInterfaces()).some((i) => i.ifindex === tc.ifindex && i.name === tc.iface)) {
      out.push({ problem: `interface ${tc.iface} (ifindex ${tc.ifindex}) is gone, and the inbound tc filter with it`, repair: `bring ${tc.iface} back, then: ${repair}` });
    } else {
      const progId = tcQueryIngress(tc.ifindex, tc.handle, tc.priority);
      if (progId === undefined) add(`tc filter on ${tc.iface} ingress (handle 0x${tc.handle.toString(16)}) is gone: inbound traffic is not redirected`);
      else {
        if (progId !== tc.progId) add(`tc filter on ${tc.iface} ingress runs program id ${progId}, not the installed ${tc.progId}`);
        checkTag('tp_tc_ingress', progId);
      }
    }
  }
  return out;
}

/** The netns check of an install: the one whose sockops program it attached. */
function recordedNetnsCheck(state: EbpfState): NetnsCheck {
  return state.links.some((l) => l.program === SOCKOPS_PROGRAM.inode) ? 'inode' : 'cookie';
}

/**
 * The spec the record's settings give, on the host as it was at install: the hash
 * decides IPv6, the record holds the netns cookie written to tp_netns_v1 (a record of
 * an older tpctl: the cookie of the namespace status runs in).
 */
export function recordedSpec(state: EbpfState): EbpfSpec | undefined {
  if (!state.settings) return undefined;
  const cookie = state.netnsCookie !== undefined ? BigInt(state.netnsCookie) : netnsCookie();
  for (const ipv6 of [true, false]) {
    const spec = buildEbpfSpec(state.settings, ipv6, cookie, recordedNetnsCheck(state));
    if (configHash(spec, state.target) === state.configHash) return spec;
  }
  return undefined;
}

/** Pins that must exist, and settings maps whose contents differ from the record's settings. */
export function mapFindings(state: EbpfState, spec: EbpfSpec | undefined): Finding[] {
  const repair = ebpfRepair(state);
  const out: Finding[] = [];
  const bpffs = state.target.bpffsPath;
  for (const m of MAP_SPECS) {
    if (!existsSync(mapPinPath(bpffs, m.name))) out.push({ problem: `map pin ${mapPinPath(bpffs, m.name)} is missing`, repair });
  }
  for (const want of spec?.maps ?? []) {
    if (!existsSync(mapPinPath(bpffs, want.name))) continue;
    const have = new Map(readMapEntries(bpffs, want.name).map((e) => [e.key.toString('hex'), e.value.toString('hex')]));
    let missing = 0;
    let changed = 0;
    for (const e of want.entries) {
      const v = have.get(e.key.toString('hex'));
      if (v === undefined) missing++;
      else if (v !== e.value.toString('hex')) changed++;
      have.delete(e.key.toString('hex'));
    }
    // An ARRAY always holds every index; only the entries the settings write count.
    const extra = mapIsArray(want.name) ? 0 : have.size;
    if (missing + changed + extra > 0) {
      const parts = [missing && `${missing} missing`, changed && `${changed} changed`, extra && `${extra} unexpected`].filter(Boolean);
      out.push({ problem: `map ${want.name} differs from the settings: ${parts.join(', ')} entr${missing + changed + extra === 1 ? 'y' : 'ies'}`, repair });
    }
  }
  return out;
}

/**
 * tp_listener_v1 is runtime state (sockops and install write it, the kernel drops a
 * socket when it closes), so only one thing can be wrong with it: a proxy listens on
 * the inbound port in this namespace but its socket is not in the map, and sk_lookup
 * refuses every inbound connection. Checked only where install ran (/proc/self/net is
 * this namespace's).
 */
export function listenerFindings(state: EbpfState, spec: EbpfSpec | undefined): Finding[] {
  const settings = state.settings;
  const link = state.links.find((l) => programHook(l.program) === 'netns');
  const pin = mapPinPath(state.target.bpffsPath, 'tp_listener_v1');
  if (!settings || !spec?.inbound || !link || (link.netns ?? currentNetns()) !== currentNetns() || !existsSync(pin)) return [];
  const out: Finding[] = [];
  const fd = objGet(pin);
  try {
    for (const l of findListeners(settings.inbound.port, settings.kumaDpUser.uid)) {
      if (mapLookup(fd, u32Key.encode(LISTENER_KEY[l.family]), 8)) continue;
      out.push({
        problem: `the inbound listener on port ${settings.inbound.port} (${l.family}, uid ${l.uid}) is not registered in tp_listener_v1: sk_lookup refuses inbound connections`,
        repair: ebpfRepair(state),
      });
    }
  } finally {
    closeSync(fd);
  }
  return out;
}

function mapIsArray(name: string): boolean {
  return MAP_SPECS.find((m) => m.name === name)?.type === BPF_MAP_TYPE.ARRAY;
}

export async function ebpfStatus(q: StatusQuery): Promise<EngineStatus | undefined> {
  const bpffs = resolve(q.bpffsPath);
  if (!hasState(bpffs)) return undefined;
  const state = readState(bpffs);
  if (!state) return undefined;
  const findings = await attachmentFindings(state);
  const spec = recordedSpec(state);
  if (state.settings && !spec) {
    findings.push({ problem: `the settings in ${statePinPath(bpffs)} do not match its own config hash`, repair: ebpfRepair(state) });
  }
  if (!state.settings) {
    findings.push({ problem: `the state record ${statePinPath(bpffs)} holds no settings (installed by an older tpctl?): map contents cannot be checked`, repair: ebpfRepair(state) });
  }
  findings.push(...mapFindings(state, spec), ...listenerFindings(state, spec));
  const statsPin = mapPinPath(bpffs, STATS_MAP);
  const status: EngineStatus = {
    engine: 'ebpf',
    findings,
    counters: existsSync(statsPin) ? readCounters(statsPin) : {},
  };
  if (state.settings) {
    status.record = { engine: 'ebpf', tpctlVersion: state.tpctlVersion ?? 'unknown', installedAt: state.installedAt, settings: state.settings };
    status.settings = toConfigFile(state.settings);
  }
  return status;
}

export const ebpfStatusEngine: StatusEngine = {
  name: 'ebpf',
  status: ebpfStatus,
  // No cgroup in the settings means the cgroup2 root: every process is under it already.
  verifyPlacement(s) {
    const cgroupPath = s.record?.settings.ebpf.cgroupPath;
    return cgroupPath ? { cgroupPath } : {};
  },
};

