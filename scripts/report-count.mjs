// Counts one vitest JSON report the way CI does: passed, failed, skipped tests.
import { readFileSync } from 'node:fs';

/** A report that is missing or unreadable counts as one failure (the run did not finish). */
export function countReport(file) {
  let report;
  try {
    report = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    return { passed: 0, failed: 1, skipped: 0 };
  }
  const passed = report.numPassedTests ?? 0;
  // A file can fail with no failed test in it: it did not load (no tests), a beforeAll
  // hook threw (its tests are reported as skipped) or an afterAll hook threw (its tests
  // passed, e.g. an uninstall in teardown failed). Each such file counts as one failure.
  const failedFiles = (report.testResults ?? []).filter(
    (r) => r.status === 'failed' && !(r.assertionResults ?? []).some((a) => a.status === 'failed'),
  ).length;
  const failed = (report.numFailedTests ?? 0) + failedFiles;
  const skipped = (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
  return { passed, failed, skipped };
}

export function formatCount({ passed, failed, skipped }) {
  return `${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`;
}
