/**
 * Load failures carry libbpf's own words: the failing program always, the
 * verifier log with --verbose (root: loads into a private bpffs).
 */
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openAndLoad } from '../../src/ebpf/loader.js';
import { unusedPrograms } from '../../src/ebpf/spec.js';
import { LibbpfError } from '../../src/errors.js';
import { PREBUILT, compileBpf } from './sandbox.js';
import { scaledMs } from '../../src/sandbox/timeout-scale.js';

let dir = '';
let bpffs = '';

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), `tpt-ebpf-loader-${process.pid}-`));
  bpffs = join(dir, 'bpffs');
  mkdirSync(bpffs);
  await execa('mount', ['-t', 'bpf', 'bpf', bpffs]);
  const objects = join(dir, 'objects');
  mkdirSync(objects);
  for (const f of ['sock_addr.bpf.o', 'sockopt.bpf.o', 'tc.bpf.o']) copyFileSync(join(PREBUILT, f), join(objects, f));
  // A sockops program the verifier rejects: it returns an unbounded value (sockops must
  // return 0 or 1). It includes maps.h, so its BTF passes the loader's layout check.
  await compileBpf(
    objects,
    'sockops',
    `#include "maps.h"
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __type(key, __u32); __type(value, __u32); __uint(max_entries, 1); } bad_m SEC(".maps");
SEC("sockops")
int tp_sockops(struct bpf_sock_ops *ctx) { __u32 k = 0; __u32 *v = bpf_map_lookup_elem(&bad_m, &k); return *v; }
SEC("sockops")
int tp_sockops_ino(struct bpf_sock_ops *ctx) { return 1; }
char LICENSE[] SEC("license") = "GPL";
`,
  );
}, scaledMs(60_000));

afterAll(async () => {
  if (bpffs) await execa('umount', [bpffs], { reject: false });
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function loadError(verbose: boolean): LibbpfError {
  try {
    openAndLoad(join(dir, 'objects'), bpffs, verbose, undefined, unusedPrograms('cookie')).close();
  } catch (e) {
    if (e instanceof LibbpfError) return e;
    throw e;
  }
  throw new Error('load unexpectedly succeeded');
}

describe('loader errors', () => {
  it('names the object and the failing program', () => {
    const e = loadError(false);
    expect(e.op).toBe('bpf_object__load');
    expect(e.oneLine()).toContain('sockops.bpf.o');
    expect(e.oneLine()).toContain("prog 'tp_sockops'");
    expect(e.hint).toContain('--verbose');
  });

  it('includes the verifier log with --verbose', () => {
    const e = loadError(true);
    expect(e.oneLine()).toMatch(/BEGIN PROG LOAD LOG.*At program exit the register R0/);
  });
});
