/** The limits that remain on eBPF settings maps are errors that name them (no root). */
import { describe, expect, it } from 'vitest';
import { LibbpfError } from '../../src/errors.js';
import { mapMemoryHint } from '../../src/ebpf/loader.js';
import { mapWriteError } from '../../src/ebpf/maps.js';

describe('map limit errors', () => {
  it('an update that runs out of kernel memory names the map, the count and the memory limit', () => {
    const e = mapWriteError(new LibbpfError('bpf_map_update_batch', 12, 'ENOMEM'), 'tp_out_cidr4_v1', 100_000);
    expect(e).toBeInstanceOf(LibbpfError);
    const line = (e as LibbpfError).oneLine();
    expect(line).toMatch(/^bpf_map_update_batch: ENOMEM writing 100000 entries to map tp_out_cidr4_v1: out of kernel memory for BPF maps/);
    expect(line).toContain('memory cgroup (memory.max)');
    expect(line).toContain('RLIMIT_MEMLOCK');
    expect((e as LibbpfError).exitCode).toBe(5);
  });

  it('a full map says so; other errors pass through unchanged', () => {
    expect((mapWriteError(new LibbpfError('bpf_map_update_elem', 7, 'E2BIG'), 'tp_uid_excl_v1', 9) as LibbpfError).oneLine()).toContain(
      'writing 9 entries to map tp_uid_excl_v1: the map is full',
    );
    const other = new LibbpfError('bpf_map_update_elem', 1, 'EPERM');
    expect(mapWriteError(other, 'x', 1)).toBe(other);
  });

  it('a map the kernel would not create gets a hint naming the memory limits', () => {
    const log = ["libbpf: map 'tp_out_cidr4_v1': failed to create: Cannot allocate memory(-12)"];
    const hint =
      "the kernel could not allocate BPF map tp_out_cidr4_v1: maps are charged to tpctl's memory cgroup (memory.max), " +
      'or to RLIMIT_MEMLOCK (ulimit -l) before Linux 5.11; raise that limit or exclude fewer addresses';
    expect(mapMemoryHint('ENOMEM', log)).toBe(hint);
    expect(mapMemoryHint('EPERM', log)).toBe(hint);
    expect(mapMemoryHint('EINVAL', log)).toBeUndefined();
    expect(mapMemoryHint('ENOMEM', ['libbpf: prog tp_connect4: verifier rejected'])).toBeUndefined();
  });
});
