/**
 * Codecs for every map key and value in bpf/include/abi.h. Each one knows its
 * exact size and writes every field at its C offset with an explicit byte order:
 * addresses and socket-address ports in network order (big endian), everything
 * else (uids, settings, map-key ports, LPM prefix lengths) in host order.
 * Offsets and sizes come from the layout tables of abi.ts, which
 * test/ebpf/abi.test.ts compares with the objects' BTF.
 */
import { endianness } from 'node:os';
import { ABI_STRUCTS, TP_AF_INET } from './abi.js';

export {
  TP_AF_INET,
  TP_AF_INET6,
  TP_DNS_ALL,
  TP_DNS_LISTED,
  TP_DNS_OFF,
  TP_F_DNS4,
  TP_F_DNS6,
  TP_F_INBOUND,
  TP_F_IPV4,
  TP_F_IPV6,
} from './abi.js';

export interface Codec<T> {
  /** The C type this codec mirrors, spelled as in BTF (`struct tp_config`, `__u32`). */
  readonly cType: string;
  readonly size: number;
  encode(v: T): Buffer;
  decode(b: Buffer): T;
}

const LE = endianness() === 'LE';

/** Host-order u16 at off; writes v first when given. */
function u16h(b: Buffer, off: number, v?: number): number {
  if (v !== undefined) {
    if (LE) b.writeUInt16LE(v, off);
    else b.writeUInt16BE(v, off);
  }
  return LE ? b.readUInt16LE(off) : b.readUInt16BE(off);
}
/** Host-order u32 at off; writes v first when given. */
function u32h(b: Buffer, off: number, v?: number): number {
  if (v !== undefined) {
    if (LE) b.writeUInt32LE(v >>> 0, off);
    else b.writeUInt32BE(v >>> 0, off);
  }
  return LE ? b.readUInt32LE(off) : b.readUInt32BE(off);
}

function checkSize(cType: string, b: Buffer, size: number): void {
  if (b.length !== size) throw new RangeError(`${cType}: expected ${size} bytes, got ${b.length}`);
}

function bytes(src: Buffer, len: number, what: string): Buffer {
  if (src.length !== len) throw new RangeError(`${what}: expected ${len} address bytes, got ${src.length}`);
  return src;
}

export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;

/** struct tp_config. */
export interface TpConfig {
  proxyUid: number;
  outboundPort: number;
  inboundPort: number;
  dnsPort: number;
  dnsMode: number;
  flags: number;
  /** 4 bytes, network order; all zero = none. */
  instanceIp4: Buffer;
  /** 16 bytes, network order; all zero = none. */
  instanceIp6: Buffer;
}

const CFG = ABI_STRUCTS.tp_config;

export const tpConfig: Codec<TpConfig> = {
  cType: 'struct tp_config',
  size: CFG.size,
  encode(v) {
    const o = CFG.off;
    const b = Buffer.alloc(CFG.size);
    u32h(b, o.proxy_uid, v.proxyUid);
    u16h(b, o.outbound_port, v.outboundPort);
    u16h(b, o.inbound_port, v.inboundPort);
    u16h(b, o.dns_port, v.dnsPort);
    b.writeUInt8(v.dnsMode, o.dns_mode);
    b.writeUInt8(v.flags, o.flags);
    bytes(v.instanceIp4, CFG.fields.instance_ip4.size, 'instance_ip4').copy(b, o.instance_ip4);
    bytes(v.instanceIp6, CFG.fields.instance_ip6.size, 'instance_ip6').copy(b, o.instance_ip6);
    return b;
  },
  decode(b) {
    checkSize(this.cType, b, CFG.size);
    const o = CFG.off;
    const f = CFG.fields;
    return {
      proxyUid: u32h(b, o.proxy_uid),
      outboundPort: u16h(b, o.outbound_port),
      inboundPort: u16h(b, o.inbound_port),
      dnsPort: u16h(b, o.dns_port),
      dnsMode: b.readUInt8(o.dns_mode),
      flags: b.readUInt8(o.flags),
      instanceIp4: Buffer.from(b.subarray(o.instance_ip4, o.instance_ip4 + f.instance_ip4.size)),
      instanceIp6: Buffer.from(b.subarray(o.instance_ip6, o.instance_ip6 + f.instance_ip6.size)),
    };
  },
};

/** struct tp_addr / struct tp_flow_key (same layout). */
export interface TpAddr {
  family: number;
  /** 4 bytes (IPv4) or 16 bytes (IPv6), network order. */
  ip: Buffer;
  /** Host-number port; stored in network order. */
  port: number;
}

function addrCodec(name: 'tp_addr' | 'tp_flow_key'): Codec<TpAddr> {
  const L = ABI_STRUCTS[name];
  const cType = `struct ${name}`;
  return {
    cType,
    size: L.size,
    encode(v) {
      const b = Buffer.alloc(L.size);
      bytes(v.ip, v.family === TP_AF_INET ? 4 : L.fields.ip.size, cType).copy(b, L.off.ip);
      b.writeUInt16BE(v.port, L.off.port);
      b.writeUInt8(v.family, L.off.family);
      return b;
    },
    decode(b) {
      checkSize(cType, b, L.size);
      const family = b.readUInt8(L.off.family);
      const ipLen = family === TP_AF_INET ? 4 : L.fields.ip.size;
      return {
        family,
        ip: Buffer.from(b.subarray(L.off.ip, L.off.ip + ipLen)),
        port: b.readUInt16BE(L.off.port),
      };
    },
  };
}

export const tpAddr = addrCodec('tp_addr');
export const tpFlowKey = addrCodec('tp_flow_key');

/** LPM trie keys: prefix length (host order) + network-order address. */
export interface LpmKey {
  prefixLength: number;
  addr: Buffer;
}

function lpmCodec(name: 'tp_lpm4_key' | 'tp_lpm6_key'): Codec<LpmKey> {
  const L = ABI_STRUCTS[name];
  const cType = `struct ${name}`;
  const addrEnd = L.off.addr + L.fields.addr.size;
  return {
    cType,
    size: L.size,
    encode(v) {
      const b = Buffer.alloc(L.size);
      u32h(b, L.off.prefixlen, v.prefixLength);
      bytes(v.addr, L.fields.addr.size, cType).copy(b, L.off.addr);
      return b;
    },
    decode(b) {
      checkSize(cType, b, L.size);
      return { prefixLength: u32h(b, L.off.prefixlen), addr: Buffer.from(b.subarray(L.off.addr, addrEnd)) };
    },
  };
}

export const tpLpm4Key = lpmCodec('tp_lpm4_key');
export const tpLpm6Key = lpmCodec('tp_lpm6_key');

/** struct tp_uid_port_key. */
export interface UidPortKey {
  uid: number;
  /** Host order; 0 = every port. */
  port: number;
  proto: number;
}

const UID = ABI_STRUCTS.tp_uid_port_key;

export const tpUidPortKey: Codec<UidPortKey> = {
  cType: 'struct tp_uid_port_key',
  size: UID.size,
  encode(v) {
    const b = Buffer.alloc(UID.size);
    u32h(b, UID.off.uid, v.uid);
    u16h(b, UID.off.port, v.port);
    b.writeUInt8(v.proto, UID.off.proto);
    return b;
  },
  decode(b) {
    checkSize(this.cType, b, UID.size);
    return { uid: u32h(b, UID.off.uid), port: u16h(b, UID.off.port), proto: b.readUInt8(UID.off.proto) };
  },
};

/** struct tp_ip6 (one address, network order). */
export const tpIp6: Codec<Buffer> = {
  cType: 'struct tp_ip6',
  size: ABI_STRUCTS.tp_ip6.size,
  encode(v) {
    return Buffer.from(bytes(v, this.size, this.cType));
  },
  decode(b) {
    checkSize(this.cType, b, this.size);
    return Buffer.from(b);
  },
};

/** __u32 IPv4 address in network order (tp_dns_srv4_v1 key). */
export const ip4Key: Codec<Buffer> = {
  cType: '__u32',
  size: 4,
  encode(v) {
    return Buffer.from(bytes(v, 4, this.cType));
  },
  decode(b) {
    checkSize(this.cType, b, 4);
    return Buffer.from(b);
  },
};

/** __u16 port in host order (tp_out_port_v1 / tp_in_port_v1 keys). */
export const portKey: Codec<number> = {
  cType: '__u16',
  size: 2,
  encode(v) {
    const b = Buffer.alloc(2);
    u16h(b, 0, v);
    return b;
  },
  decode(b) {
    checkSize(this.cType, b, 2);
    return u16h(b, 0);
  },
};

/** __u32 in host order (array index keys). */
export const u32Key: Codec<number> = {
  cType: '__u32',
  size: 4,
  encode(v) {
    const b = Buffer.alloc(4);
    u32h(b, 0, v);
    return b;
  },
  decode(b) {
    checkSize(this.cType, b, 4);
    return u32h(b, 0);
  },
};

/** __u64, host order: a socket cookie (tp_orig_dst_v1 key), the netns cookie (tp_netns_v1 value). */
export const cookieKey: Codec<bigint> = {
  cType: '__u64',
  size: 8,
  encode(v) {
    const b = Buffer.alloc(8);
    if (LE) b.writeBigUInt64LE(v);
    else b.writeBigUInt64BE(v);
    return b;
  },
  decode(b) {
    checkSize(this.cType, b, 8);
    return LE ? b.readBigUInt64LE(0) : b.readBigUInt64BE(0);
  },
};

export const u64Value = cookieKey;

/** __u8 flag value of the set-like maps. */
export const u8Value: Codec<number> = {
  cType: '__u8',
  size: 1,
  encode(v) {
    return Buffer.from([v]);
  },
  decode(b) {
    checkSize(this.cType, b, 1);
    return b.readUInt8(0);
  },
};
