/**
 * Program tags of the shipped objects, to tell whether what runs is what tpctl ships.
 * The kernel computes a tag over a program's instructions with map references zeroed,
 * so loading the same object again (here: privately, with no pinning and one-entry
 * maps, closed at once) yields the tag the installed program has. Nothing is pinned
 * or attached; the temporary programs and maps vanish when the objects close.
 */
import { join } from 'node:path';
import { BpfObject, progIdentity, programFd } from './libbpf.js';
import { OBJECT_FILES } from './spec.js';

/** program name → tag, for every program in the objects of `sourceDir` but those in `skip`. */
export function shippedProgramTags(sourceDir: string, skip: ReadonlySet<string> = new Set()): Map<string, string> {
  const tags = new Map<string, string>();
  for (const file of OBJECT_FILES) {
    const obj = BpfObject.open(join(sourceDir, file));
    try {
      obj.privateMaps(1);
      obj.skipPrograms(skip);
      obj.load();
      for (const p of obj.programs()) if (!skip.has(p.name)) tags.set(p.name, progIdentity(programFd(p)).tag);
    } finally {
      obj.close();
    }
  }
  return tags;
}
