/**
 * The TypeScript copy of bpf/include/abi.h: every enum the programs share with the
 * controller and the byte layout of every map key and value struct. The codecs and
 * the map table (spec.ts) are written in terms of these tables, and abiMismatches()
 * compares the tables with what an object's BTF says: test/ebpf/abi.test.ts runs it
 * over every prebuilt object, the loader over the objects it is about to load.
 */
import type { Btf, BtfMapDef, FieldLayout, StructLayout } from './btf.js';

/** abi.h's enums, by enum name (BTF keeps the names and values of each). */
export const ABI_ENUMS = {
  tp_abi: { TP_ABI_VERSION: 1 },
  tp_af: { TP_AF_INET: 2, TP_AF_INET6: 10 },
  tp_dns_mode: { TP_DNS_OFF: 0, TP_DNS_LISTED: 1, TP_DNS_ALL: 2 },
  tp_cfg_flag: { TP_F_INBOUND: 1 << 0, TP_F_IPV4: 1 << 1, TP_F_IPV6: 1 << 2, TP_F_DNS4: 1 << 3, TP_F_DNS6: 1 << 4 },
  tp_listener_key: { TP_LISTENER_INET: 0, TP_LISTENER_INET6: 1 },
  tp_stat: {
    TP_STAT_OUTBOUND: 0,
    TP_STAT_INBOUND: 1,
    TP_STAT_DNS: 2,
    TP_STAT_EXCL_OUT_PORT: 3,
    TP_STAT_EXCL_IN_PORT: 4,
    TP_STAT_EXCL_OUT_ADDR: 5,
    TP_STAT_EXCL_IN_ADDR: 6,
    TP_STAT_EXCL_UID: 7,
    TP_STAT_PROXY: 8,
    TP_STAT_NO_LISTENER: 9,
    TP_STAT_REFUSED_SOCKOPT: 10,
    TP_STAT_DROPPED_EGRESS: 11,
    TP_STAT_MAX: 16,
  },
} as const;

export const { TP_ABI_VERSION } = ABI_ENUMS.tp_abi;
export const { TP_AF_INET, TP_AF_INET6 } = ABI_ENUMS.tp_af;
export const { TP_DNS_OFF, TP_DNS_LISTED, TP_DNS_ALL } = ABI_ENUMS.tp_dns_mode;
export const { TP_F_INBOUND, TP_F_IPV4, TP_F_IPV6, TP_F_DNS4, TP_F_DNS6 } = ABI_ENUMS.tp_cfg_flag;
export const { TP_LISTENER_INET, TP_LISTENER_INET6 } = ABI_ENUMS.tp_listener_key;
export const TP_STAT = ABI_ENUMS.tp_stat;

/** A struct layout whose field names stay typed, plus `off.<field>` for the codecs. */
export interface Layout<F extends string> extends StructLayout {
  fields: Record<F, FieldLayout>;
  off: Record<F, number>;
}

/** fields: C member name → [byte offset, byte size], in declaration order, padding included. */
function layout<F extends string>(size: number, fields: Record<F, readonly [number, number]>): Layout<F> {
  const entries = Object.entries(fields) as Array<[F, readonly [number, number]]>;
  return {
    size,
    fields: Object.fromEntries(entries.map(([k, [offset, sz]]) => [k, { offset, size: sz }])) as Record<F, FieldLayout>,
    off: Object.fromEntries(entries.map(([k, [offset]]) => [k, offset])) as Record<F, number>,
  };
}

const addrLayout = () => layout(20, { ip: [0, 16], port: [16, 2], family: [18, 1], pad: [19, 1] });

/** abi.h's structs, by struct name. */
export const ABI_STRUCTS = {
  tp_config: layout(32, {
    proxy_uid: [0, 4],
    outbound_port: [4, 2],
    inbound_port: [6, 2],
    dns_port: [8, 2],
    dns_mode: [10, 1],
    flags: [11, 1],
    instance_ip4: [12, 4],
    instance_ip6: [16, 16],
  }),
  tp_addr: addrLayout(),
  tp_flow_key: addrLayout(),
  tp_lpm4_key: layout(8, { prefixlen: [0, 4], addr: [4, 4] }),
  tp_lpm6_key: layout(20, { prefixlen: [0, 4], addr: [4, 16] }),
  tp_uid_port_key: layout(8, { uid: [0, 4], port: [4, 2], proto: [6, 1], pad: [7, 1] }),
  tp_ip6: layout(16, { addr: [0, 16] }),
} as const;

export interface AbiExpectations {
  enums: Readonly<Record<string, Readonly<Record<string, number>>>>;
  structs: Readonly<Record<string, StructLayout>>;
  maps: readonly BtfMapDef[];
}

const show = (v: unknown): string => JSON.stringify(v);

/**
 * Every difference between what the TypeScript side expects and what the object's
 * BTF records, one line each: empty when they agree. Exact in both directions (a
 * field, enumerator or map added on one side only is a difference too), except that
 * with `extras: 'ignore'` tp_* enums and maps tpctl does not know are the object's
 * business (the loader's view: a foreign object may carry private maps).
 */
export function abiMismatches(btf: Btf, want: AbiExpectations, extras: 'report' | 'ignore' = 'report'): string[] {
  const out: string[] = [];
  for (const [name, values] of Object.entries(want.enums)) {
    let got: Record<string, number>;
    try {
      got = btf.enum(name);
    } catch (e) {
      out.push((e as Error).message);
      continue;
    }
    if (show(got) !== show(values)) out.push(`enum ${name}: BTF says ${show(got)}, TypeScript ${show(values)}`);
  }
  for (const name of extras === 'report' ? btf.enumNames() : []) {
    if (name.startsWith('tp_') && !(name in want.enums)) out.push(`enum ${name}: in BTF, unknown to TypeScript`);
  }
  for (const [name, l] of Object.entries(want.structs)) {
    let got: StructLayout;
    try {
      got = btf.struct(name);
    } catch (e) {
      out.push((e as Error).message);
      continue;
    }
    if (got.size !== l.size) out.push(`struct ${name}: BTF size ${got.size}, TypeScript ${l.size}`);
    if (show(got.fields) !== show(l.fields)) {
      out.push(`struct ${name}: BTF fields ${show(got.fields)}, TypeScript ${show(l.fields)}`);
    }
  }
  const maps = new Map(btf.maps().map((m) => [m.name, m]));
  for (const m of want.maps) {
    const got = maps.get(m.name);
    if (!got) out.push(`map ${m.name}: not in .maps`);
    else if (show(got) !== show(m)) out.push(`map ${m.name}: BTF says ${show(got)}, TypeScript ${show(m)}`);
    maps.delete(m.name);
  }
  if (extras === 'report') for (const name of maps.keys()) out.push(`map ${name}: in .maps, unknown to TypeScript`);
  return out;
}
