/**
 * Files shipped next to the compiled module that needs them. The same code runs as
 * dist/DIR/x.js (tsc output) and inlined into dist/tpctl.cjs (the bundled bin, see
 * scripts/bundle.mjs), where import.meta.url is the bundle's: so a file is looked up at
 * its tsc-relative path first, then at the same path from dist/.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** `rel` from the calling module (`moduleUrl`), or `fromDist` from dist/ when that does not exist. */
export function shippedFile(moduleUrl: string, rel: string, fromDist: string): string {
  const near = fileURLToPath(new URL(rel, moduleUrl));
  if (existsSync(near)) return near;
  return fileURLToPath(new URL(fromDist, moduleUrl));
}
