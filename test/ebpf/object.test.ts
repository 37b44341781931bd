/**
 * The prebuilt objects against the contract, without loading them (no root):
 * every expected program in its canonical section, every shared map with the
 * agreed layout, and the BTF sizes of the abi.h structs equal to the codec sizes.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BpfObject } from '../../src/ebpf/libbpf.js';
import { checkObjectContract } from '../../src/ebpf/loader.js';
import { MAP_SPECS, OBJECT_FILES, PROGRAM_SPECS } from '../../src/ebpf/spec.js';
import { abiStructs } from '../../src/ebpf/codecs.js';
import { PREBUILT } from './sandbox.js';

function withObject<T>(file: string, fn: (o: BpfObject) => T): T {
  const o = BpfObject.open(join(PREBUILT, file));
  try {
    return fn(o);
  } finally {
    o.close();
  }
}

describe('prebuilt BPF objects', () => {
  for (const file of OBJECT_FILES) {
    describe(file, () => {
      it('has the expected programs in canonical sections', () => {
        withObject(file, (o) => {
          const got = o.programs().map((p) => `${p.name} ${p.section}`);
          for (const want of PROGRAM_SPECS.filter((p) => p.object === file)) {
            expect(got).toContain(`${want.name} ${want.section}`);
            expect(want.name.length).toBeLessThanOrEqual(15);
          }
          expect(() => checkObjectContract(o, file)).not.toThrow();
        });
      });

      it('declares the shared maps with the agreed layout', () => {
        withObject(file, (o) => {
          const maps = new Map(o.maps().map((m) => [m.name, m]));
          // Every object carries the full shared set (maps.h), so any load order works.
          for (const spec of MAP_SPECS) {
            const m = maps.get(spec.name);
            expect(m, `${file}: map ${spec.name}`).toBeDefined();
            expect({ type: m!.type, key: m!.keySize, value: m!.valueSize, max: m!.maxEntries }).toEqual({
              type: spec.type,
              key: spec.keySize,
              value: spec.valueSize,
              max: spec.maxEntries,
            });
          }
        });
      });

      it('records abi.h struct sizes in BTF equal to the codec sizes', () => {
        withObject(file, (o) => {
          for (const [name, codec] of Object.entries(abiStructs)) {
            expect(o.btfStructSize(name), `${file}: struct ${name}`).toBe(codec.size);
          }
        });
      });
    });
  }

  it('reports a missing object as a LibbpfError naming the file', () => {
    expect(() => BpfObject.open('/nonexistent/x.bpf.o')).toThrow(/bpf_object__open_file: ENOENT \/nonexistent\/x.bpf.o/);
  });
});
