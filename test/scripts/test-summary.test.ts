/**
 * scripts/test-summary.mjs: the "N passed, N failed" line CI reads, summed over the
 * host's vitest report and the kernel-matrix VMs' reports (scripts/vm/run.mjs).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../fixtures/dist.js';
import { scaledMs } from '../../src/sandbox/timeout-scale.js';

const dir = mkdtempSync(join(tmpdir(), `tpt-scripts-summary-${process.pid}-`));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function report(name: string, body: object): string {
  const file = join(dir, name);
  writeFileSync(file, JSON.stringify(body));
  return file;
}

async function summary(files: string[]): Promise<string> {
  const r = await execa('node', [join(REPO_ROOT, 'scripts/test-summary.mjs'), ...files], { timeout: scaledMs(20_000) });
  return r.stdout.trim();
}

describe('test-summary', () => {
  const host = report('host.json', { numPassedTests: 500, numFailedTests: 0, numPendingTests: 0, numTodoTests: 0, testResults: [] });
  const vm = report('vm.json', {
    numPassedTests: 60,
    numFailedTests: 1,
    numPendingTests: 2,
    testResults: [
      { status: 'failed', assertionResults: [{ status: 'failed' }] },
      // A file whose afterAll hook failed: its tests passed, the file did not.
      { status: 'failed', assertionResults: [{ status: 'passed' }] },
    ],
  });

  it('sums the reports it is given', async () => {
    expect(await summary([host, vm])).toBe('560 passed, 2 failed, 2 skipped');
  });

  it('counts a missing or unreadable report (a VM that never wrote one) as one failure', async () => {
    const garbage = join(dir, 'garbage.json');
    writeFileSync(garbage, '{');
    expect(await summary([host, join(dir, 'missing.json'), garbage])).toBe('500 passed, 2 failed');
  });
});
