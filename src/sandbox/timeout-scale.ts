/**
 * One knob for every fixed wait in the tests: TPCTL_TEST_TIMEOUT_SCALE multiplies them
 * all (vitest's test and hook timeouts, the cast's start-up, probes, CLI runs, helper
 * commands). 1 on a normal machine; scripts/vm/run.mjs sets it inside its VMs (2 under
 * KVM, 6 under TCG emulation, where starting node takes seconds).
 */
export const TIMEOUT_SCALE_ENV = 'TPCTL_TEST_TIMEOUT_SCALE';

export function timeoutScale(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env[TIMEOUT_SCALE_ENV];
  if (raw === undefined || raw.trim() === '') return 1;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) {
    throw new Error(`${TIMEOUT_SCALE_ENV}: "${raw}" is not a positive number (unset it, or e.g. 2 for a slow machine)`);
  }
  return n;
}

/** `ms` scaled by TPCTL_TEST_TIMEOUT_SCALE, in whole milliseconds. */
export function scaledMs(ms: number): number {
  return Math.round(ms * timeoutScale());
}
