/**
 * The koffi declarations of libbpf's and the kernel's structs (src/ebpf/libbpf.ts)
 * against the C headers (no root): a one-line C file declaring each struct is
 * compiled with clang to a BPF object, whose BTF gives the compiler's layout; every
 * member koffi declares must sit at the same offset with the same size, none may be
 * skipped in between, and the option structs (whose `sz` libbpf checks) must have
 * the same total size. The BPF target is LP64 like the x86_64 and arm64 hosts.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BTF_KIND, Btf, type BtfMember } from '../../src/ebpf/btf.js';
import { C_STRUCTS, declareStructs } from '../../src/ebpf/libbpf.js';
import { koffi } from '../../src/ffi.js';

/** Members koffi declares for a slot the header leaves unnamed (`__u32 :32` stubbing out a removed field). */
const UNNAMED_SLOTS = new Set(['bpf_object_open_opts.attach_prog_fd']);
/** The kernel's info structs are declared up to the last member tpctl reads; libbpf's option structs whole. */
const PREFIX_ONLY = new Set(['bpf_prog_info', 'bpf_map_info', 'bpf_link_info']);

interface KoffiMember {
  name: string;
  type: unknown;
  offset: number;
}
interface KoffiInfo {
  primitive: string;
  size: number;
  members?: Record<string, KoffiMember>;
}

let dir = '';
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function headerBtf(): Btf {
  dir = mkdtempSync(join(tmpdir(), 'tpctl-structs-9c-'));
  const src = join(dir, 'structs.bpf.c');
  const vars = Object.keys(C_STRUCTS).map((name, i) => `struct ${name} v${i};`);
  writeFileSync(src, ['#include <linux/bpf.h>', '#include <bpf/libbpf.h>', '#include <bpf/bpf.h>', ...vars, ''].join('\n'));
  const obj = join(dir, 'structs.bpf.o');
  // glibc's headers (libbpf.h includes stdio.h) pick their word size from the target
  // architecture's macro, which the BPF target does not define.
  const arch = process.arch === 'arm64' ? ['-D__aarch64__', '-I/usr/include/aarch64-linux-gnu'] : ['-D__x86_64__', '-I/usr/include/x86_64-linux-gnu'];
  execFileSync('clang', ['-g', '-O2', '-target', 'bpf', ...arch, '-c', src, '-o', obj]);
  return Btf.fromObjectFile(obj);
}

/** Every difference between koffi's layout of `k` and the BTF type `btfId`, as lines. */
function differences(btf: Btf, path: string, k: unknown, btfId: number, prefixOnly: boolean): string[] {
  const info = koffi.introspect(k as string) as unknown as KoffiInfo;
  const t = btf.strip(btfId);
  const out: string[] = [];
  if (!info.members) {
    if (info.size !== btf.sizeOf(btfId)) out.push(`${path}: koffi size ${info.size}, C ${btf.sizeOf(btfId)}`);
    return out;
  }
  if (t.kind !== BTF_KIND.STRUCT && t.kind !== BTF_KIND.UNION) return [`${path}: koffi ${info.primitive}, C kind ${t.kind}`];
  const named = new Map(t.members.map((m) => [m.name, m]));
  const anonymous = t.members.filter((m) => m.name === '');
  const seen = new Set<BtfMember>();
  let end = 0; // offset (bits) of the last member koffi declares
  for (const m of Object.values(info.members)) {
    if (UNNAMED_SLOTS.has(`${path}.${m.name}`)) continue;
    // koffi needs a name for an anonymous union; the C one has none.
    const c = named.get(m.name) ?? (m.name === 'u' ? anonymous[0] : undefined);
    if (!c) {
      out.push(`${path}.${m.name}: not a member in C`);
      continue;
    }
    seen.add(c);
    if (m.offset * 8 !== c.bitOffset) out.push(`${path}.${m.name}: koffi offset ${m.offset}, C ${c.bitOffset / 8}`);
    out.push(...differences(btf, `${path}.${m.name}`, m.type, c.type, false));
    end = Math.max(end, c.bitOffset);
  }
  if (t.kind === BTF_KIND.STRUCT) {
    for (const c of t.members) {
      if (!seen.has(c) && (!prefixOnly || c.bitOffset <= end)) out.push(`${path}.${c.name || '(anonymous)'}: C member missing in koffi`);
    }
    if (!prefixOnly && info.size !== t.sizeOrType) out.push(`${path}: koffi size ${info.size}, C ${t.sizeOrType}`);
    if (prefixOnly && info.size > t.sizeOrType) out.push(`${path}: koffi size ${info.size} exceeds C ${t.sizeOrType}`);
  }
  return out;
}

describe('koffi struct declarations match the C headers', () => {
  const btf = headerBtf();
  declareStructs();
  for (const [cName, koffiName] of Object.entries(C_STRUCTS)) {
    it(`struct ${cName}`, () => {
      const t = btf.find(BTF_KIND.STRUCT, cName);
      expect(t, `struct ${cName} in the compiled headers`).toBeDefined();
      expect(differences(btf, cName, koffiName, t!.id, PREFIX_ONLY.has(cName))).toEqual([]);
    });
  }

  it('notices a wrong declaration', () => {
    koffi.struct('tp_test_bad_tc_opts', { sz: 'size_t', prog_fd: 'int', prog_id: 'uint32_t', flags: 'uint32_t' });
    const t = btf.find(BTF_KIND.STRUCT, 'bpf_tc_opts')!;
    expect(differences(btf, 'bpf_tc_opts', 'tp_test_bad_tc_opts', t.id, false)).toEqual([
      'bpf_tc_opts.prog_id: koffi offset 12, C 16',
      'bpf_tc_opts.flags: koffi offset 16, C 12',
      'bpf_tc_opts.handle: C member missing in koffi',
      'bpf_tc_opts.priority: C member missing in koffi',
      'bpf_tc_opts: koffi size 24, C 32',
    ]);
  });
});
