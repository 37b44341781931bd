/**
 * The C/TypeScript contract, read from the objects' BTF (no root, no libbpf for the
 * comparison): every field offset and size of abi.h's structs, every enumerator the
 * programs share with tpctl, and every map's type, key and value types and sizes,
 * max_entries, flags and pinning as spec.ts declares them. A C change without the
 * TypeScript side (or the reverse) fails here; the last test proves it on an object
 * compiled from an altered copy of the headers.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ABI_STRUCTS, abiMismatches } from '../../src/ebpf/abi.js';
import { Btf } from '../../src/ebpf/btf.js';
import { BpfObject } from '../../src/ebpf/libbpf.js';
import { checkObjectContract } from '../../src/ebpf/loader.js';
import { ABI_CONTRACT, MAP_SPECS, OBJECT_FILES } from '../../src/ebpf/spec.js';
import { PREBUILT, REPO_ROOT } from './sandbox.js';

describe('prebuilt objects agree with the TypeScript side (BTF)', () => {
  for (const file of OBJECT_FILES) {
    it(`${file}: every enum, struct field and map definition`, () => {
      expect(abiMismatches(Btf.fromObjectFile(join(PREBUILT, file)), ABI_CONTRACT)).toEqual([]);
    });
  }

  it('the contract covers every map, with the exact C key and value types', () => {
    const maps = ABI_CONTRACT.maps;
    expect(maps.map((m) => m.name)).toEqual(MAP_SPECS.map((m) => m.name));
    expect(maps.find((m) => m.name === 'tp_out_cidr6_v1')).toEqual({
      name: 'tp_out_cidr6_v1',
      type: 11,
      keyType: 'struct tp_lpm6_key',
      valueType: '__u8',
      keySize: 20,
      valueSize: 1,
      maxEntries: 16384,
      flags: 1,
      pinning: 1,
    });
    expect(ABI_STRUCTS.tp_config.off).toEqual({
      proxy_uid: 0,
      outbound_port: 4,
      inbound_port: 6,
      dns_port: 8,
      dns_mode: 10,
      flags: 11,
      instance_ip4: 12,
      instance_ip6: 16,
    });
  });

  it('the BTF reader sees the maps as libbpf does', () => {
    const path = join(PREBUILT, 'sock_addr.bpf.o');
    const o = BpfObject.open(path);
    try {
      const libbpf = o.maps().map((m) => ({ name: m.name, type: m.type, keySize: m.keySize, valueSize: m.valueSize, maxEntries: m.maxEntries }));
      const btf = Btf.fromObjectFile(path)
        .maps()
        .map((m) => ({ name: m.name, type: m.type, keySize: m.keySize, valueSize: m.valueSize, maxEntries: m.maxEntries }));
      expect(btf).toEqual(libbpf);
      expect(btf).toHaveLength(MAP_SPECS.length);
    } finally {
      o.close();
    }
  });
});

describe('a C change without the TypeScript side', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tpctl-abi-9c-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** Compiles a one-line program over a copy of bpf/include with `edit` applied to one header. */
  function compileWith(header: 'abi.h' | 'maps.h', edit: (text: string) => string): string {
    const include = join(dir, `include-${header}`);
    cpSync(join(REPO_ROOT, 'bpf', 'include'), include, { recursive: true });
    const original = readFileSync(join(include, header), 'utf8');
    const edited = edit(original);
    expect(edited, `the edit of ${header} must change it`).not.toBe(original);
    writeFileSync(join(include, header), edited);
    const src = join(dir, `${header}.bpf.c`);
    writeFileSync(src, '#include "maps.h"\nchar LICENSE[] SEC("license") = "GPL";\n');
    const obj = join(dir, `${header}.bpf.o`);
    const arch = process.arch === 'arm64' ? 'aarch64' : 'x86_64';
    execFileSync('clang', ['-O2', '-g', '-target', 'bpf', '-I', include, '-I', `/usr/include/${arch}-linux-gnu`, '-c', src, '-o', obj]);
    return obj;
  }

  it('is reported field by field, enum by enum and map by map, and the loader refuses the object', () => {
    const abi = compileWith('abi.h', (h) =>
      h.replace(/__u16 dns_port;/, '__u32 dns_port;').replace(/TP_F_IPV6 *= 1u << 2/, 'TP_F_IPV6 = 1u << 3'),
    );
    const got = abiMismatches(Btf.fromObjectFile(abi), ABI_CONTRACT);
    expect(got.map((l) => l.split(':')[0])).toEqual(['enum tp_cfg_flag', 'struct tp_config', 'struct tp_config', 'map tp_cfg_v1']);
    expect(got[0]).toBe(
      'enum tp_cfg_flag: BTF says {"TP_F_INBOUND":1,"TP_F_IPV4":2,"TP_F_IPV6":8,"TP_F_DNS4":8,"TP_F_DNS6":16}, TypeScript {"TP_F_INBOUND":1,"TP_F_IPV4":2,"TP_F_IPV6":4,"TP_F_DNS4":8,"TP_F_DNS6":16}',
    );
    expect(got[1]).toBe('struct tp_config: BTF size 36, TypeScript 32');
    expect(got[2]).toContain('"dns_port":{"offset":8,"size":4},"dns_mode":{"offset":12,"size":1}');
    expect(got[3]).toContain('"valueSize":36');

    const maps = compileWith('maps.h', (h) => h.replace(/__uint\(max_entries, 256\);/, '__uint(max_entries, 512);'));
    expect(abiMismatches(Btf.fromObjectFile(maps), ABI_CONTRACT)).toEqual([
      expect.stringMatching(/^map tp_dns_srv4_v1: BTF says .*"maxEntries":512.*, TypeScript .*"maxEntries":256/),
    ]);

    const o = BpfObject.open(abi);
    try {
      expect(() => checkObjectContract(o, 'x.bpf.o')).toThrow(`${abi}: enum tp_cfg_flag: BTF says`);
    } finally {
      o.close();
    }
  });

  it('an object without BTF is refused by the loader in one line', () => {
    const src = join(dir, 'nobtf.bpf.c');
    const obj = join(dir, 'nobtf.bpf.o');
    writeFileSync(src, 'char LICENSE[] __attribute__((section("license"), used)) = "GPL";\n');
    execFileSync('clang', ['-O2', '-target', 'bpf', '-c', src, '-o', obj]);
    const o = BpfObject.open(obj);
    try {
      expect(() => checkObjectContract(o, 'x.bpf.o')).toThrow(`read BTF of ${obj}: no .BTF section`);
    } finally {
      o.close();
    }
  });
});
