'use strict';
/*
 * `make build` (scripts/bundle.mjs): writes dist/tpctl-main.cjs.cache, the V8 code
 * cache the bin (scripts/tpctl-bin.cjs) runs the bundle from. It compiles the bundle
 * exactly as the bin does, runs one dry run (so the functions a command needs are
 * compiled, not only the top level), and saves V8's code for all of them at exit.
 * Run as: node scripts/code-cache.cjs DIST_DIR (stdout is the dry run's, discard it).
 */
const { readFileSync, renameSync, writeFileSync } = require('node:fs');
const { join, resolve } = require('node:path');
const { Script } = require('node:vm');

const dist = resolve(process.argv[2]);
const bin = join(dist, 'tpctl.cjs');
const main = join(dist, 'tpctl-main.cjs');
const source = readFileSync(main, 'utf8');
const buildId = source.slice(0, source.indexOf('\n') + 1);
if (!buildId.startsWith('//')) throw new Error(`${main}: the first line is not the build id comment`);
const script = new Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, { filename: main });
process.on('exit', () => {
  writeFileSync(`${main}.cache.tmp`, Buffer.concat([Buffer.from(buildId), script.createCachedData()]));
  renameSync(`${main}.cache.tmp`, `${main}.cache`);
});
process.argv = [process.argv[0], bin, 'install', 'transparent-proxy', '--dry-run', '--kuma-dp-user', '0', '--exclude-outbound-ips', '10.0.0.0/8', '--exclude-inbound-ports', '22'];
const mod = { exports: {} };
script.runInThisContext()(mod.exports, require('node:module').createRequire(bin), mod, bin, dist);
