/**
 * Codecs for every map key and value in bpf/include/abi.h. Each one knows its
 * exact size and writes every field at its C offset with an explicit byte order:
 * addresses and socket-address ports in network order (big endian), everything
 * else (uids, settings, map-key ports, LPM prefix lengths) in host order.
 * test/ebpf/object.test.ts compares these sizes with the objects' BTF.
 */
import { endianness } from 'node:os';

export interface Codec<T> {
  /** The C struct (or scalar) this codec mirrors. */
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

export const TP_AF_INET = 2;
export const TP_AF_INET6 = 10;

export const TP_DNS_OFF = 0;
export const TP_DNS_LISTED = 1;
export const TP_DNS_ALL = 2;

export const TP_F_INBOUND = 1 << 0;
export const TP_F_IPV4 = 1 << 1;
export const TP_F_IPV6 = 1 << 2;

export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;

/** struct tp_config (32 bytes). */
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

export const tpConfig: Codec<TpConfig> = {
  cType: 'struct tp_config',
  size: 32,
  encode(v) {
    const b = Buffer.alloc(32);
    u32h(b, 0, v.proxyUid);
    u16h(b, 4, v.outboundPort);
    u16h(b, 6, v.inboundPort);
    u16h(b, 8, v.dnsPort);
    b.writeUInt8(v.dnsMode, 10);
    b.writeUInt8(v.flags, 11);
    bytes(v.instanceIp4, 4, 'instance_ip4').copy(b, 12);
    bytes(v.instanceIp6, 16, 'instance_ip6').copy(b, 16);
    return b;
  },
  decode(b) {
    checkSize(this.cType, b, 32);
    return {
      proxyUid: u32h(b, 0),
      outboundPort: u16h(b, 4),
      inboundPort: u16h(b, 6),
      dnsPort: u16h(b, 8),
      dnsMode: b.readUInt8(10),
      flags: b.readUInt8(11),
      instanceIp4: Buffer.from(b.subarray(12, 16)),
      instanceIp6: Buffer.from(b.subarray(16, 32)),
    };
  },
};

/** struct tp_addr / struct tp_flow_key (same layout, 20 bytes). */
export interface TpAddr {
  family: number;
  /** 4 bytes (IPv4) or 16 bytes (IPv6), network order. */
  ip: Buffer;
  /** Host-number port; stored in network order. */
  port: number;
}

function addrCodec(cType: string): Codec<TpAddr> {
  return {
    cType,
    size: 20,
    encode(v) {
      const b = Buffer.alloc(20);
      bytes(v.ip, v.family === TP_AF_INET ? 4 : 16, cType).copy(b, 0);
      b.writeUInt16BE(v.port, 16);
      b.writeUInt8(v.family, 18);
      return b;
    },
    decode(b) {
      checkSize(cType, b, 20);
      const family = b.readUInt8(18);
      return {
        family,
        ip: Buffer.from(b.subarray(0, family === TP_AF_INET ? 4 : 16)),
        port: b.readUInt16BE(16),
      };
    },
  };
}

export const tpAddr = addrCodec('struct tp_addr');
export const tpFlowKey = addrCodec('struct tp_flow_key');

/** LPM trie keys: prefix length (host order) + network-order address. */
export interface LpmKey {
  prefixLength: number;
  addr: Buffer;
}

function lpmCodec(cType: string, addrLen: number): Codec<LpmKey> {
  const size = 4 + addrLen;
  return {
    cType,
    size,
    encode(v) {
      const b = Buffer.alloc(size);
      u32h(b, 0, v.prefixLength);
      bytes(v.addr, addrLen, cType).copy(b, 4);
      return b;
    },
    decode(b) {
      checkSize(cType, b, size);
      return { prefixLength: u32h(b, 0), addr: Buffer.from(b.subarray(4, size)) };
    },
  };
}

export const tpLpm4Key = lpmCodec('struct tp_lpm4_key', 4);
export const tpLpm6Key = lpmCodec('struct tp_lpm6_key', 16);

/** struct tp_uid_port_key (8 bytes). */
export interface UidPortKey {
  uid: number;
  /** Host order; 0 = every port. */
  port: number;
  proto: number;
}

export const tpUidPortKey: Codec<UidPortKey> = {
  cType: 'struct tp_uid_port_key',
  size: 8,
  encode(v) {
    const b = Buffer.alloc(8);
    u32h(b, 0, v.uid);
    u16h(b, 4, v.port);
    b.writeUInt8(v.proto, 6);
    return b;
  },
  decode(b) {
    checkSize(this.cType, b, 8);
    return { uid: u32h(b, 0), port: u16h(b, 4), proto: b.readUInt8(6) };
  },
};

/** struct tp_ip6 (16 bytes, network order). */
export const tpIp6: Codec<Buffer> = {
  cType: 'struct tp_ip6',
  size: 16,
  encode(v) {
    return Buffer.from(bytes(v, 16, this.cType));
  },
  decode(b) {
    checkSize(this.cType, b, 16);
    return Buffer.from(b);
  },
};

/** __u32 IPv4 address in network order (tp_dns_srv4_v1 key). */
export const ip4Key: Codec<Buffer> = {
  cType: '__u32 (network order)',
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
  cType: '__u16 (host order)',
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

/** BTF struct name → codec, for the ABI test. */
export const abiStructs: Record<string, Codec<unknown>> = {
  tp_config: tpConfig as Codec<unknown>,
  tp_addr: tpAddr as Codec<unknown>,
  tp_flow_key: tpFlowKey as Codec<unknown>,
  tp_lpm4_key: tpLpm4Key as Codec<unknown>,
  tp_lpm6_key: tpLpm6Key as Codec<unknown>,
  tp_uid_port_key: tpUidPortKey as Codec<unknown>,
  tp_ip6: tpIp6 as Codec<unknown>,
};
