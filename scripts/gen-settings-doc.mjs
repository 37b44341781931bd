#!/usr/bin/env node
// Rewrites README.md's settings tables from src/config/settings.ts (through the built
// dist/config/settings-doc.js: run `make build` first). test/config/settings-doc.test.ts
// fails when README.md is stale.
import { readFileSync, writeFileSync } from 'node:fs';

const { withSettingsDoc } = await import(new URL('../dist/config/settings-doc.js', import.meta.url));
const path = new URL('../README.md', import.meta.url);
const before = readFileSync(path, 'utf8');
const after = withSettingsDoc(before);
if (after !== before) writeFileSync(path, after);
console.log(after === before ? 'README.md settings tables are up to date' : 'README.md settings tables rewritten');
