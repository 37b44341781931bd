import { defineConfig } from 'vitest/config';
import { scaledMs } from './src/sandbox/timeout-scale.js';

// Privileged end-to-end tests build network namespaces, cgroups and bpffs mounts;
// they run one file at a time so two sandboxes never race on shared kernel state
// (cgroup hooks are global, not per netns).
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Removes leftovers of killed earlier runs (see sweepStaleSandboxes) before any test builds a sandbox.
    globalSetup: ['test/global-setup.ts'],
    fileParallelism: false,
    testTimeout: scaledMs(60_000),
    hookTimeout: scaledMs(60_000),
    reporters: ['default', 'json'],
    outputFile: { json: 'reports/vitest.json' },
  },
});
