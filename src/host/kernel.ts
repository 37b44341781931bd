/**
 * Kernel version checks. The release string comes from `uname -r`
 * (os.release() is the same syscall) and looks like `6.18.44-fc-v669` or
 * `5.10.0-28-amd64`; only the leading major.minor[.patch] matters.
 */
import { release } from 'node:os';
import { KernelTooOldError, PreflightError } from '../errors.js';

export interface KernelVersion {
  major: number;
  minor: number;
  patch: number;
  /** The full release string as the kernel reports it. */
  release: string;
}

export function parseKernelRelease(text: string): KernelVersion {
  const m = /^(\d+)\.(\d+)(?:\.(\d+))?/.exec(text.trim());
  if (!m) {
    throw new PreflightError(`kernel version: cannot parse uname -r output "${text.trim()}"`);
  }
  return { major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3] ?? 0), release: text.trim() };
}

export function currentKernel(): KernelVersion {
  return parseKernelRelease(release());
}

export function kernelAtLeast(v: KernelVersion, major: number, minor: number): boolean {
  return v.major > major || (v.major === major && v.minor >= minor);
}

/** Throws KernelTooOldError naming the kernel found when it is older than major.minor. */
export function requireKernel(feature: string, major: number, minor: number, v = currentKernel(), hint = ''): KernelVersion {
  if (!kernelAtLeast(v, major, minor)) {
    throw new KernelTooOldError(`${feature}: kernel ${v.release} is too old, need ${major}.${minor} or newer`, {
      hint: `${hint ? `${hint}; ` : ''}upgrade the kernel or use the iptables engine (omit --ebpf-enabled)`,
    });
  }
  return v;
}
