/**
 * Runs once before the suite:
 *  - builds dist/ when a source is newer than it (test files then run the current
 *    code without each compiling it again; after `make test`'s build this is a no-op);
 *  - removes what sandboxes of killed earlier runs left behind (their namespaces,
 *    cgroups, bpffs mounts, temp dirs), so `make test` starts clean. Only leftovers
 *    whose creating pid is gone are touched; runs in progress elsewhere keep theirs.
 */
import { describeSweep, sweepStaleSandboxes } from '../src/sandbox/leftovers.js';
import { ensureDistBuilt } from './fixtures/dist.js';

export default async function setup(): Promise<void> {
  const typeErrors = await ensureDistBuilt();
  if (typeErrors) console.warn(`global setup: dist/ built with errors: ${typeErrors}`);
  // Privileged tests need root anyway; without it there is nothing of ours to remove.
  if (process.getuid?.() !== 0) return;
  for (const line of describeSweep(await sweepStaleSandboxes())) console.warn(`global setup: ${line}`);
}
