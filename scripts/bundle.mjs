/**
 * `make build`'s second step: dist/ (tsc output) → the `tpctl` bin:
 *   dist/tpctl-main.cjs        the CLI as one CommonJS file (one read and compile
 *                              instead of ~50 ES modules through the ESM loader)
 *   dist/tpctl-main.cjs.cache  V8's code for it after a dry run (scripts/code-cache.cjs)
 *   dist/tpctl.cjs             the bin: runs the bundle from that cache (scripts/tpctl-bin.cjs)
 * koffi (native) and yaml (only with a YAML --config) are required from node_modules
 * when used; the CLI runs tools with node:child_process (src/host/run-tool.ts), never
 * execa. See README "Start-up".
 */
import { chmodSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { build } from 'esbuild';

const bundled = await build({
  write: false,
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  minify: true,
  logLevel: 'warning',
  legalComments: 'none',
  entryPoints: ['dist/cli.js'],
  outfile: 'dist/tpctl-main.cjs',
  external: ['koffi', 'yaml'],
  // The bin runs the bundle through vm.Script, which has no import(): every import()
  // becomes a require().
  supported: { 'dynamic-import': false },
  // The ES modules read import.meta.url (package.json, bpf/prebuilt, createRequire).
  define: { 'import.meta.url': '__tpctl_url' },
  banner: { js: "const __tpctl_url = require('node:url').pathToFileURL(__filename).href;" },
  plugins: [
    {
      name: 'no-execa',
      setup(b) {
        b.onResolve({ filter: /^execa$/ }, (args) => ({ errors: [{ text: `${args.importer} imports execa: the CLI runs tools with src/host/run-tool.ts` }] }));
      },
    },
  ],
});
// Line 1 is the build id that ties the code cache to this very bundle; the bin is
// what carries the shebang (the bundle is compiled as a function body).
// Each file is replaced whole (rename), so a bin started meanwhile (tests run it in
// parallel) reads the old file or the new one, never half of one.
const replace = (path, text, mode = 0o644) => {
  writeFileSync(`${path}.tmp`, text);
  chmodSync(`${path}.tmp`, mode);
  renameSync(`${path}.tmp`, path);
};
const code = bundled.outputFiles[0].text.replace(/^#!.*\n/, '');
replace('dist/tpctl-main.cjs', `//tpctl-build ${randomUUID()}\n${code}`);
replace('dist/tpctl.cjs', readFileSync('scripts/tpctl-bin.cjs'), 0o755);
execFileSync(process.execPath, ['scripts/code-cache.cjs', 'dist'], { stdio: ['ignore', 'ignore', 'inherit'] });
