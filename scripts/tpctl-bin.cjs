#!/usr/bin/env node
'use strict';
/*
 * dist/tpctl.cjs, the `tpctl` bin (copied here by scripts/bundle.mjs). It runs the
 * bundled CLI, dist/tpctl-main.cjs, from V8's compiled code (dist/tpctl-main.cjs.cache,
 * written by `make build`): compiling the 270 KB bundle is ~10 ms of a ~75 ms dry run,
 * and Node 20 has no compile cache of its own (README: Start-up). A cache this Node
 * cannot use (another Node version, other V8 flags) is rejected by V8 and the bundle is
 * compiled as usual; one from another build is never offered (the build id below).
 */
const { readFileSync } = require('node:fs');
const { join } = require('node:path');
const { Script } = require('node:vm');

const main = join(__dirname, 'tpctl-main.cjs');
const source = readFileSync(main, 'utf8');
let cachedData;
try {
  // "<first line of the bundle>\n<V8 code cache>": the bundle's first line is its build id.
  const file = readFileSync(`${main}.cache`);
  const nl = file.indexOf(10);
  if (nl > 0 && source.startsWith(file.toString('utf8', 0, nl + 1))) cachedData = file.subarray(nl + 1);
} catch {
  // no cache: compile
}
const script = new Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, { filename: main, cachedData });
// The bundle sees this file as its own (__filename): the CLI compares it with argv[1],
// and finds package.json and bpf/prebuilt relative to it (the same directory).
script.runInThisContext()(module.exports, require, module, __filename, __dirname);
