/**
 * `make build`'s second step: dist/ (tsc output) → dist/tpctl.cjs, the file the
 * `tpctl` bin runs. One CommonJS file starts faster than ~50 ES modules (no ESM
 * loader, one compile); execa, needed only when a command really runs a tool, is
 * its own file (dist/tpctl-execa.cjs) so --version and --dry-run never compile it.
 * koffi (native) and yaml (only with --config) are required from node_modules when used.
 * See README "Start-up".
 */
import { build } from 'esbuild';

const common = { bundle: true, platform: 'node', format: 'cjs', target: 'node20', minify: true, logLevel: 'warning', legalComments: 'none' };

await build({ ...common, entryPoints: ['node_modules/execa/index.js'], outfile: 'dist/tpctl-execa.cjs' });

await build({
  ...common,
  entryPoints: ['dist/cli.js'],
  outfile: 'dist/tpctl.cjs',
  external: ['koffi', 'yaml'],
  // import('execa') as require(): an import() of a CommonJS file goes through the ESM
  // loader, whose export scan of the 115 KB file alone costs ~40 ms.
  supported: { 'dynamic-import': false },
  // The ES modules read import.meta.url (package.json, bpf/prebuilt, createRequire).
  define: { 'import.meta.url': '__tpctl_url' },
  banner: { js: "const __tpctl_url = require('node:url').pathToFileURL(__filename).href;" },
  plugins: [
    {
      name: 'execa-apart',
      setup(b) {
        b.onResolve({ filter: /^execa$/ }, () => ({ path: './tpctl-execa.cjs', external: true }));
      },
    },
  ],
});
