/**
 * Privilege checks from /proc/self/status (CapEff), so tpctl can say which
 * capability is missing instead of failing half-way with EPERM.
 */
import { readFileSync } from 'node:fs';
import { PrivilegeError } from '../errors.js';

export const CAP = {
  NET_ADMIN: 12,
  NET_RAW: 13,
  SYS_ADMIN: 21,
  BPF: 39,
} as const;
export type CapName = keyof typeof CAP;

/** Effective capability mask of this process. */
export function effectiveCapabilities(statusText?: string): bigint {
  const text = statusText ?? readFileSync('/proc/self/status', 'utf8');
  const m = /^CapEff:\s*([0-9a-fA-F]+)$/m.exec(text);
  return m ? BigInt(`0x${m[1]}`) : 0n;
}

export function hasCapability(cap: CapName, mask = effectiveCapabilities()): boolean {
  return (mask & (1n << BigInt(CAP[cap]))) !== 0n;
}

/**
 * Throws a PrivilegeError naming every missing capability. `anyOf` lists
 * alternatives (CAP_BPF may be replaced by CAP_SYS_ADMIN on older kernels).
 */
export function requireCapabilities(
  what: string,
  needed: Array<CapName | CapName[]>,
  mask = effectiveCapabilities(),
): void {
  const missing: string[] = [];
  for (const need of needed) {
    const alts = Array.isArray(need) ? need : [need];
    if (!alts.some((c) => hasCapability(c, mask))) missing.push(alts.map((c) => `CAP_${c}`).join(' or '));
  }
  if (missing.length > 0) {
    throw new PrivilegeError(`${what}: missing ${missing.join(', ')}`, {
      hint: 'run as root (sudo tpctl ...) or grant the capabilities',
    });
  }
}
