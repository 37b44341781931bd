/**
 * A reader for the BTF an object file carries (its .BTF ELF section): struct
 * layouts, enums and the BTF-style map definitions of the .maps section. Pure
 * TypeScript over the file's bytes, no libbpf, so the layout test runs anywhere.
 * Format: linux Documentation/bpf/btf.rst.
 */
import { readFileSync } from 'node:fs';

const BTF_MAGIC = 0xeb9f;

/** BTF_KIND_* (only the kinds this reader looks into are named). */
export const BTF_KIND = {
  INT: 1,
  PTR: 2,
  ARRAY: 3,
  STRUCT: 4,
  UNION: 5,
  ENUM: 6,
  FWD: 7,
  TYPEDEF: 8,
  VOLATILE: 9,
  CONST: 10,
  RESTRICT: 11,
  FUNC: 12,
  FUNC_PROTO: 13,
  VAR: 14,
  DATASEC: 15,
  FLOAT: 16,
  DECL_TAG: 17,
  TYPE_TAG: 18,
  ENUM64: 19,
} as const;

export interface BtfMember {
  name: string;
  type: number;
  /** Offset in bits from the start of the struct. */
  bitOffset: number;
  /** Non-zero for a bitfield. */
  bitSize: number;
}

export interface BtfType {
  id: number;
  kind: number;
  name: string;
  /** size (INT, STRUCT, UNION, ENUM, DATASEC, FLOAT) or the referenced type (PTR, TYPEDEF, modifiers, VAR, FUNC). */
  sizeOrType: number;
  members: BtfMember[];
  /** ENUM/ENUM64 enumerators. */
  values: Array<{ name: string; value: bigint }>;
  /** ARRAY: element type and length. */
  array?: { type: number; nelems: number };
  /** DATASEC: the variables it holds. */
  vars: Array<{ type: number; offset: number; size: number }>;
}

export interface FieldLayout {
  offset: number;
  size: number;
}

export interface StructLayout {
  size: number;
  /** C member name → byte offset and size, in declaration order. */
  fields: Record<string, FieldLayout>;
}

/** A map as its BTF-style definition in .maps declares it (maps.h). */
export interface BtfMapDef {
  name: string;
  type: number;
  /** C spelling of the key and value types: `__u32`, `struct tp_config`. */
  keyType: string;
  valueType: string;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
  pinning: number;
}

/** The .BTF section of an ELF64 object (either byte order), or an Error naming what is missing. */
export function elfSection(elf: Buffer, wanted: string): Buffer {
  if (elf.readUInt32BE(0) !== 0x7f454c46 || elf[4] !== 2) throw new Error('not an ELF64 object');
  const le = elf[5] === 1;
  const u16 = (off: number): number => (le ? elf.readUInt16LE(off) : elf.readUInt16BE(off));
  const u32 = (off: number): number => (le ? elf.readUInt32LE(off) : elf.readUInt32BE(off));
  const u64 = (off: number): number => Number(le ? elf.readBigUInt64LE(off) : elf.readBigUInt64BE(off));
  const shoff = u64(0x28);
  const shentsize = u16(0x3a);
  const shnum = u16(0x3c);
  const header = (i: number): { name: number; offset: number; size: number } => {
    const at = shoff + i * shentsize;
    return { name: u32(at), offset: u64(at + 24), size: u64(at + 32) };
  };
  const names = header(u16(0x3e));
  for (let i = 0; i < shnum; i++) {
    const sh = header(i);
    const start = names.offset + sh.name;
    const name = elf.toString('latin1', start, elf.indexOf(0, start));
    if (name === wanted) return elf.subarray(sh.offset, sh.offset + sh.size);
  }
  throw new Error(`no ${wanted} section`);
}

export class Btf {
  readonly types: BtfType[] = [];

  constructor(raw: Buffer) {
    let le = true;
    if (raw.readUInt16LE(0) !== BTF_MAGIC) {
      if (raw.readUInt16BE(0) !== BTF_MAGIC) throw new Error('bad BTF magic');
      le = false;
    }
    const u32 = (off: number): number => (le ? raw.readUInt32LE(off) : raw.readUInt32BE(off));
    const i32 = (off: number): number => (le ? raw.readInt32LE(off) : raw.readInt32BE(off));
    const hdrLen = u32(4);
    const typeStart = hdrLen + u32(8);
    const typeEnd = typeStart + u32(12);
    const strStart = hdrLen + u32(16);
    const str = (off: number): string => raw.toString('utf8', strStart + off, raw.indexOf(0, strStart + off));

    let at = typeStart;
    for (let id = 1; at < typeEnd; id++) {
      const info = u32(at + 4);
      const kind = (info >>> 24) & 0x1f;
      const vlen = info & 0xffff;
      const kindFlag = info >>> 31 === 1;
      const t: BtfType = { id, kind, name: str(u32(at)), sizeOrType: u32(at + 8), members: [], values: [], vars: [] };
      at += 12;
      switch (kind) {
        case BTF_KIND.INT:
        case BTF_KIND.VAR:
        case BTF_KIND.DECL_TAG:
          at += 4;
          break;
        case BTF_KIND.ARRAY:
          t.array = { type: u32(at), nelems: u32(at + 8) };
          at += 12;
          break;
        case BTF_KIND.STRUCT:
        case BTF_KIND.UNION:
          for (let i = 0; i < vlen; i++, at += 12) {
            const off = u32(at + 8);
            t.members.push({
              name: str(u32(at)),
              type: u32(at + 4),
              bitOffset: kindFlag ? off & 0xffffff : off,
              bitSize: kindFlag ? off >>> 24 : 0,
            });
          }
          break;
        case BTF_KIND.ENUM:
          for (let i = 0; i < vlen; i++, at += 8) t.values.push({ name: str(u32(at)), value: BigInt(i32(at + 4)) });
          break;
        case BTF_KIND.ENUM64:
          for (let i = 0; i < vlen; i++, at += 12) {
            t.values.push({ name: str(u32(at)), value: (BigInt(u32(at + 8)) << 32n) | BigInt(u32(at + 4)) });
          }
          break;
        case BTF_KIND.FUNC_PROTO:
          at += 8 * vlen;
          break;
        case BTF_KIND.DATASEC:
          for (let i = 0; i < vlen; i++, at += 12) t.vars.push({ type: u32(at), offset: u32(at + 4), size: u32(at + 8) });
          break;
        default:
          break; // PTR, FWD, TYPEDEF, modifiers, FUNC, FLOAT, TYPE_TAG: no trailing data
      }
      this.types.push(t);
    }
  }

  static fromObjectFile(path: string): Btf {
    try {
      return new Btf(elfSection(readFileSync(path), '.BTF'));
    } catch (e) {
      throw new Error(`read BTF of ${path}: ${(e as Error).message}`);
    }
  }

  type(id: number): BtfType {
    const t = this.types[id - 1];
    if (!t) throw new Error(`BTF type ${id} does not exist`);
    return t;
  }

  find(kind: number, name: string): BtfType | undefined {
    return this.types.find((t) => t.kind === kind && t.name === name);
  }

  /** Follows typedefs and const/volatile/restrict/type tags to the type underneath. */
  strip(id: number, keepTypedef = false): BtfType {
    let t = this.type(id);
    const modifiers: number[] = [BTF_KIND.VOLATILE, BTF_KIND.CONST, BTF_KIND.RESTRICT, BTF_KIND.TYPE_TAG];
    if (!keepTypedef) modifiers.push(BTF_KIND.TYPEDEF);
    while (modifiers.includes(t.kind)) t = this.type(t.sizeOrType);
    return t;
  }

  /** sizeof the type, as the compiler laid it out. */
  sizeOf(id: number): number {
    const t = this.strip(id);
    if (t.kind === BTF_KIND.PTR) return 8;
    if (t.kind === BTF_KIND.ARRAY) return t.array!.nelems * this.sizeOf(t.array!.type);
    return t.sizeOrType;
  }

  /** How C spells the type: `__u32` for a typedef, `struct x` for a struct. */
  cName(id: number): string {
    const t = this.strip(id, true);
    if (t.kind === BTF_KIND.STRUCT) return `struct ${t.name}`;
    if (t.kind === BTF_KIND.UNION) return `union ${t.name}`;
    if (t.kind === BTF_KIND.ENUM || t.kind === BTF_KIND.ENUM64) return `enum ${t.name}`;
    return t.name;
  }

  /** Byte offset and size of every member of `struct name`; throws when it is absent or has bitfields. */
  struct(name: string): StructLayout {
    const t = this.find(BTF_KIND.STRUCT, name);
    if (!t) throw new Error(`struct ${name} is not in BTF`);
    const fields: Record<string, FieldLayout> = {};
    for (const m of t.members) {
      if (m.bitSize !== 0 || m.bitOffset % 8 !== 0) throw new Error(`struct ${name}: ${m.name} is a bitfield`);
      fields[m.name] = { offset: m.bitOffset / 8, size: this.sizeOf(m.type) };
    }
    return { size: t.sizeOrType, fields };
  }

  /** Enumerators of `enum name` as numbers; throws when absent. */
  enum(name: string): Record<string, number> {
    const t = this.types.find((x) => (x.kind === BTF_KIND.ENUM || x.kind === BTF_KIND.ENUM64) && x.name === name);
    if (!t) throw new Error(`enum ${name} is not in BTF`);
    return Object.fromEntries(t.values.map((v) => [v.name, Number(v.value)]));
  }

  /** Every named enum in the BTF. */
  enumNames(): string[] {
    return this.types.filter((t) => (t.kind === BTF_KIND.ENUM || t.kind === BTF_KIND.ENUM64) && t.name).map((t) => t.name);
  }

  /**
   * The map definitions of the .maps section. libbpf's convention: `__uint(f, N)` is
   * a member `int (*f)[N]`, `__type(f, T)` a member `T *f`.
   */
  maps(): BtfMapDef[] {
    const sec = this.find(BTF_KIND.DATASEC, '.maps');
    if (!sec) return [];
    return sec.vars.map(({ type }) => {
      const v = this.type(type);
      const def = this.strip(v.sizeOrType);
      const member = (field: string): BtfMember | undefined => def.members.find((m) => m.name === field);
      const uint = (field: string): number => {
        const m = member(field);
        if (!m) return 0;
        const arr = this.strip(this.strip(m.type).sizeOrType);
        if (arr.kind !== BTF_KIND.ARRAY) throw new Error(`map ${v.name}: ${field} is not __uint()`);
        return arr.array!.nelems;
      };
      const pointee = (field: string): number => {
        const m = member(field);
        if (!m) throw new Error(`map ${v.name}: no ${field} type`);
        return this.strip(m.type).sizeOrType;
      };
      const key = pointee('key');
      const value = pointee('value');
      return {
        name: v.name,
        type: uint('type'),
        keyType: this.cName(key),
        valueType: this.cName(value),
        keySize: this.sizeOf(key),
        valueSize: this.sizeOf(value),
        maxEntries: uint('max_entries'),
        flags: uint('map_flags'),
        pinning: uint('pinning'),
      };
    });
  }
}
