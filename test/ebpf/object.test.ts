/**
 * The prebuilt objects against the contract, without loading them (no root):
 * every expected program in its canonical section (abi.test.ts checks their BTF).
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BpfObject } from '../../src/ebpf/libbpf.js';
import { checkObjectContract } from '../../src/ebpf/loader.js';
import { OBJECT_FILES, PROGRAM_SPECS } from '../../src/ebpf/spec.js';
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
    });
  }

  it('reports a missing object as a LibbpfError naming the file', () => {
    expect(() => BpfObject.open('/nonexistent/x.bpf.o')).toThrow(/bpf_object__open_file: ENOENT \/nonexistent\/x.bpf.o/);
  });
});
