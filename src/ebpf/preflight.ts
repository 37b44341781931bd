/**
 * Everything the eBPF engine checks before it changes anything. Each failure is a
 * PreflightError (KernelTooOldError, PrivilegeError) naming what is missing; the
 * result holds the resolved defaults (cgroup, bpffs, interface) install uses.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { PreflightError } from '../errors.js';
import type { TransparentProxyConfig } from '../config/types.js';
import { requireCapabilities } from '../host/capabilities.js';
import { currentKernel, requireKernel, type KernelVersion } from '../host/kernel.js';
import { findCgroup2Mount, mountOf, readMounts, type MountEntry } from '../host/mounts.js';
import { interfaceWithAddress, isUp, listInterfaces, type NetInterface } from '../host/interfaces.js';
import { requirePrivateDir } from '../host/private-dir.js';
import { requireOwnPinDir } from './pin-dir.js';
import { libbpf } from './libbpf.js';
import { probeNetnsCheck } from './netns-check.js';
import { OBJECT_FILES, type AttachTarget, type NetnsCheck } from './spec.js';

/**
 * 5.10, the oldest kernel of the VM matrix, where every eBPF suite passes. What the
 * programs need is older (sk_lookup 5.9, cgroup/getpeername4|6 5.8); the one feature
 * that differs between the tested kernels, how sockops tells a listener of tpctl's
 * network namespace, is probed at install (netns-check.ts), not inferred from here.
 */
export const MIN_KERNEL = { major: 5, minor: 10 } as const;
/**
 * The kernels the VM matrix (make test-vm) runs the eBPF suites on and that pass them,
 * named in the too-old hint and the README.
 */
export const TESTED_KERNELS = ['5.10', '6.1', '6.12'] as const;

export interface BpffsPlan {
  path: string;
  /** Directories to create, outermost first (recorded so uninstall removes only these). */
  createDirs: string[];
  /** The path is not on a bpffs: mount one there. */
  mount: boolean;
}

export interface InstallPreflight {
  kernel: KernelVersion;
  target: AttachTarget;
  bpffs: BpffsPlan;
  hostHasIpv6: boolean;
  netnsCheck: NetnsCheck;
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** Decides how to get a bpffs at `path`: use it, create a directory inside one, or mount one. */
export function planBpffs(path: string, mounts: MountEntry[]): BpffsPlan {
  const abs = resolve(path);
  const createDirs: string[] = [];
  let existing = abs;
  while (!existsSync(existing)) {
    createDirs.unshift(existing);
    const parent = dirname(existing);
    if (parent === existing) break;
    existing = parent;
  }
  if (!isDirectory(existing)) {
    throw new PreflightError(`--ebpf-bpffs-path ${abs}: ${existing} is not a directory`);
  }
  const onBpffs = mountOf(existing, mounts)?.fsType === 'bpf';
  if (onBpffs) return { path: abs, createDirs, mount: false };
  if (createDirs.length === 0 && readdirSync(abs).length > 0) {
    throw new PreflightError(`--ebpf-bpffs-path ${abs}: not on a bpffs and not empty, refusing to mount a bpffs over it`, {
      hint: 'pass an empty directory or one inside a mounted bpffs (e.g. /sys/fs/bpf/tpctl)',
    });
  }
  return { path: abs, createDirs, mount: true };
}

export function resolveCgroup(requested: string | undefined, mounts: MountEntry[]): string {
  const root = findCgroup2Mount(mounts);
  if (!root) {
    throw new PreflightError('cgroup v2: no cgroup2 mount in /proc/self/mountinfo', {
      hint: 'mount one (mount -t cgroup2 none /sys/fs/cgroup/unified) or boot with systemd.unified_cgroup_hierarchy',
    });
  }
  if (requested === undefined) return root;
  const abs = resolve(requested);
  if (!isDirectory(abs)) {
    throw new PreflightError(`--ebpf-cgroup-path ${abs}: not a directory`);
  }
  if (mountOf(abs, mounts)?.fsType !== 'cgroup2') {
    throw new PreflightError(`--ebpf-cgroup-path ${abs}: not inside a cgroup2 mount`, {
      hint: `the cgroup2 mount on this host is ${root}`,
    });
  }
  return abs;
}

function chooseTcInterface(cfg: TransparentProxyConfig, ifaces: NetInterface[]): NetInterface {
  const name = cfg.ebpf.tcAttachIface;
  if (name !== undefined && name !== '') {
    const iface = ifaces.find((i) => i.name === name);
    if (!iface) {
      throw new PreflightError(`--ebpf-tc-attach-iface ${name}: no such interface in this network namespace`, {
        hint: `interfaces: ${ifaces.map((i) => i.name).join(', ')}`,
      });
    }
    return iface;
  }
  for (const ip of [cfg.ebpf.instanceIp.ipv4, cfg.ebpf.instanceIp.ipv6]) {
    if (!ip) continue;
    const iface = interfaceWithAddress(ifaces, ip);
    if (iface) return iface;
  }
  throw new PreflightError('tc interface: no interface holds the instance IP', {
    hint: 'pass --ebpf-tc-attach-iface',
  });
}

/** The kernel check of the eBPF engine: at least MIN_KERNEL; the error names the tested kernels. */
export function requireEbpfKernel(v: KernelVersion = currentKernel()): KernelVersion {
  return requireKernel('eBPF transparent proxy', MIN_KERNEL.major, MIN_KERNEL.minor, v, `tested on ${TESTED_KERNELS.join(', ')}`);
}

export async function preflightInstall(cfg: TransparentProxyConfig): Promise<InstallPreflight> {
  const kernel = requireEbpfKernel();
  requireCapabilities('install eBPF transparent proxy', [['BPF', 'SYS_ADMIN'], 'NET_ADMIN']);
  libbpf();
  const netnsCheck = probeNetnsCheck();

  const programsSourcePath = resolve(cfg.ebpf.programsSourcePath);
  const digest = createHash('sha256');
  for (const obj of OBJECT_FILES) {
    const path = join(programsSourcePath, obj);
    if (!existsSync(path)) {
      throw new PreflightError(`eBPF programs: ${path} not found`, {
        hint: 'pass --ebpf-programs-source-path the directory holding the *.bpf.o files (make bpf builds them)',
      });
    }
    digest.update(readFileSync(path));
  }

  const mounts = readMounts();
  const cgroupPath = resolveCgroup(cfg.ebpf.cgroupPath, mounts);
  const bpffsWhat = `--ebpf-bpffs-path ${resolve(cfg.ebpf.bpffsPath)}`;
  // Before anything is read from it: no symlink on the way, root-only all along.
  requirePrivateDir(bpffsWhat, cfg.ebpf.bpffsPath);
  const bpffs = planBpffs(cfg.ebpf.bpffsPath, mounts);
  if (bpffs.mount) requireCapabilities(`mount bpffs at ${bpffs.path}`, ['SYS_ADMIN']);
  else if (bpffs.createDirs.length === 0) requireOwnPinDir(bpffsWhat, bpffs.path);

  const ifaces = await listInterfaces();
  const instanceIps = [cfg.ebpf.instanceIp.ipv4, cfg.ebpf.instanceIp.ipv6].filter((x): x is string => !!x);
  if (instanceIps.length === 0) {
    throw new PreflightError('--ebpf-instance-ip: required with --ebpf-enabled', { hint: 'pass the IP address of this host' });
  }
  for (const ip of instanceIps) {
    if (!interfaceWithAddress(ifaces, ip)) {
      throw new PreflightError(`--ebpf-instance-ip ${ip}: not an address of this host`, {
        hint: 'pass an address assigned to one of its interfaces (ip addr)',
      });
    }
  }

  let tc: AttachTarget['tc'];
  if (cfg.inbound.enabled) {
    const iface = chooseTcInterface(cfg, ifaces);
    if (!isUp(iface)) {
      throw new PreflightError(`tc interface ${iface.name}: is down (operstate ${iface.operState})`, {
        hint: `ip link set ${iface.name} up, or pass --ebpf-tc-attach-iface`,
      });
    }
    tc = { iface: iface.name, ifindex: iface.ifindex };
  }

  const hostHasIpv6 = ifaces.some((i) => i.addresses.some((a) => a.family === 'ipv6'));
  return {
    kernel,
    target: { bpffsPath: bpffs.path, cgroupPath, programsSourcePath, objectsDigest: digest.digest('hex'), ...(tc ? { tc } : {}) },
    bpffs,
    hostHasIpv6,
    netnsCheck,
  };
}

export function preflightUninstall(): void {
  requireCapabilities('uninstall eBPF transparent proxy', [['BPF', 'SYS_ADMIN'], 'NET_ADMIN']);
  libbpf();
}
