/**
 * Runs once before the suite: removes what sandboxes of killed earlier runs left
 * behind (their namespaces, cgroups, bpffs mounts, temp dirs), so `make test`
 * starts clean. Only leftovers whose creating pid is gone are touched; runs in
 * progress elsewhere keep theirs.
 */
import { describeSweep, sweepStaleSandboxes } from '../src/sandbox/sandbox.js';

export default async function setup(): Promise<void> {
  // Privileged tests need root anyway; without it there is nothing of ours to remove.
  if (process.getuid?.() !== 0) return;
  for (const line of describeSweep(await sweepStaleSandboxes())) console.warn(`global setup: ${line}`);
}
