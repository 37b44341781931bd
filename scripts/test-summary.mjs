// Prints the one line CI counts: "N passed, N failed[, N skipped]", summed over the
// vitest JSON reports given (the host's run and one per test VM, see scripts/vm/run.mjs).
// A report that is missing or unreadable counts as one failure.
import { countReport, formatCount } from './report-count.mjs';

const files = process.argv.length > 2 ? process.argv.slice(2) : ['reports/vitest.json'];
const total = { passed: 0, failed: 0, skipped: 0 };
for (const file of files) {
  const c = countReport(file);
  total.passed += c.passed;
  total.failed += c.failed;
  total.skipped += c.skipped;
}
console.log(formatCount(total));
