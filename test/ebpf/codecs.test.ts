/**
 * Codecs: byte-exact layouts, and a round trip through real kernel maps created
 * with bpf_map_create (root), including an LPM trie lookup that only matches when
 * the prefix-length and address bytes are where the kernel expects them.
 */
import { closeSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import {
  TP_AF_INET,
  TP_AF_INET6,
  cookieKey,
  ip4Key,
  portKey,
  tpAddr,
  tpConfig,
  tpFlowKey,
  tpIp6,
  tpLpm4Key,
  tpLpm6Key,
  tpUidPortKey,
  u32Key,
  u8Value,
  type Codec,
} from '../../src/ebpf/codecs.js';
import { ipv4Bytes, ipv6Bytes, ipv6Text, maskPrefix } from '../../src/ebpf/ip.js';
import { BPF_F_NO_PREALLOC, BPF_MAP_TYPE, mapCreate, mapDelete, mapKeys, mapLookup, mapUpdate } from '../../src/ebpf/libbpf.js';

describe('codec layouts', () => {
  it('have the abi.h sizes', () => {
    const codecs = [tpConfig, tpAddr, tpFlowKey, tpLpm4Key, tpLpm6Key, tpUidPortKey, tpIp6];
    expect(Object.fromEntries(codecs.map((c) => [c.cType.replace('struct ', ''), c.size]))).toEqual({
      tp_config: 32,
      tp_addr: 20,
      tp_flow_key: 20,
      tp_lpm4_key: 8,
      tp_lpm6_key: 20,
      tp_uid_port_key: 8,
      tp_ip6: 16,
    });
  });

  it('tp_config puts ports in host order and addresses in network order', () => {
    const b = tpConfig.encode({
      proxyUid: 5678,
      outboundPort: 15001,
      inboundPort: 15006,
      dnsPort: 15053,
      dnsMode: 2,
      flags: 7,
      instanceIp4: ipv4Bytes('10.0.0.1'),
      instanceIp6: ipv6Bytes('fd00::1'),
    });
    expect(b.length).toBe(32);
    expect(b.readUInt32LE(0)).toBe(5678);
    expect(b.readUInt16LE(4)).toBe(15001);
    expect(b.readUInt16LE(6)).toBe(15006);
    expect(b.readUInt16LE(8)).toBe(15053);
    expect([b[10], b[11]]).toEqual([2, 7]);
    expect([...b.subarray(12, 16)]).toEqual([10, 0, 0, 1]);
    expect(b.subarray(16, 32).toString('hex')).toBe('fd000000000000000000000000000001');
    expect(tpConfig.decode(b).proxyUid).toBe(5678);
  });

  it('tp_addr stores the port in network order after a 16-byte address slot', () => {
    const b = tpAddr.encode({ family: TP_AF_INET, ip: ipv4Bytes('192.168.1.2'), port: 8080 });
    expect(b.toString('hex')).toBe('c0a80102' + '00'.repeat(12) + '1f90' + '02' + '00');
    expect(tpAddr.decode(b)).toEqual({ family: TP_AF_INET, ip: ipv4Bytes('192.168.1.2'), port: 8080 });
  });

  it('uid/port keys and LPM keys', () => {
    expect(tpUidPortKey.encode({ uid: 1000, port: 53, proto: 17 }).toString('hex')).toBe('e8030000' + '3500' + '11' + '00');
    expect(tpLpm4Key.encode({ prefixLength: 16, addr: ipv4Bytes('10.9.0.0') }).toString('hex')).toBe('10000000' + '0a090000');
    expect(portKey.encode(15001).readUInt16LE(0)).toBe(15001);
  });

  it('ip helpers', () => {
    expect(ipv6Bytes('::ffff:1.2.3.4').toString('hex')).toBe('00000000000000000000ffff01020304');
    expect(ipv6Text(ipv6Bytes('fd00:0:0:1::5'))).toBe('fd00:0:0:1::5');
    expect(ipv6Text(ipv6Bytes('::1'))).toBe('::1');
    expect([...maskPrefix(ipv4Bytes('10.9.200.7'), 12)]).toEqual([10, 0, 0, 0]);
    expect([...maskPrefix(ipv4Bytes('10.9.200.7'), 20)]).toEqual([10, 9, 192, 0]);
  });
});

describe('codecs against real kernel maps', () => {
  const fds: number[] = [];
  afterAll(() => {
    for (const fd of fds) closeSync(fd);
  });

  function roundTrip<K, V>(type: number, key: Codec<K>, value: Codec<V>, k: K, v: V, flags = 0): void {
    const fd = mapCreate(type, 'tpt_codec', key.size, value.size, 16, flags);
    fds.push(fd);
    mapUpdate(fd, key.encode(k), value.encode(v));
    const got = mapLookup(fd, key.encode(k), value.size);
    expect(got).toBeDefined();
    expect(value.decode(got!)).toEqual(v);
    const keys = mapKeys(fd, key.size);
    expect(keys.map((x) => key.decode(x))).toEqual([k]);
    expect(mapDelete(fd, key.encode(k))).toBe(true);
    expect(mapLookup(fd, key.encode(k), value.size)).toBeUndefined();
  }

  it('tp_config in an ARRAY', () => {
    const cfg = {
      proxyUid: 5678,
      outboundPort: 15001,
      inboundPort: 15006,
      dnsPort: 15053,
      dnsMode: 1,
      flags: 3,
      instanceIp4: ipv4Bytes('10.0.0.1'),
      instanceIp6: ipv6Bytes('fd00::1'),
    };
    const fd = mapCreate(BPF_MAP_TYPE.ARRAY, 'tpt_cfg', 4, 32, 1);
    fds.push(fd);
    mapUpdate(fd, u32Key.encode(0), tpConfig.encode(cfg));
    expect(tpConfig.decode(mapLookup(fd, u32Key.encode(0), 32)!)).toEqual(cfg);
  });

  it('tp_addr keyed by cookie, tp_flow_key → tp_addr, uid keys, dns keys', () => {
    const a6 = { family: TP_AF_INET6, ip: ipv6Bytes('fd00::42'), port: 443 };
    roundTrip(BPF_MAP_TYPE.LRU_HASH, cookieKey, tpAddr, 0x1234_5678_9abcn, a6);
    roundTrip(BPF_MAP_TYPE.HASH, tpFlowKey, tpAddr, { family: TP_AF_INET, ip: ipv4Bytes('10.0.0.2'), port: 40000 }, a6);
    roundTrip(BPF_MAP_TYPE.HASH, tpUidPortKey, u8Value, { uid: 1001, port: 0, proto: 6 }, 1);
    roundTrip(BPF_MAP_TYPE.HASH, ip4Key, u8Value, ipv4Bytes('10.0.0.53'), 1);
    roundTrip(BPF_MAP_TYPE.HASH, tpIp6, u8Value, ipv6Bytes('fd00::53'), 1);
    roundTrip(BPF_MAP_TYPE.HASH, portKey, u8Value, 8080, 1);
  });

  it('LPM trie keys match by longest prefix in the kernel', () => {
    const fd4 = mapCreate(BPF_MAP_TYPE.LPM_TRIE, 'tpt_lpm4', 8, 1, 16, BPF_F_NO_PREALLOC);
    const fd6 = mapCreate(BPF_MAP_TYPE.LPM_TRIE, 'tpt_lpm6', 20, 1, 16, BPF_F_NO_PREALLOC);
    fds.push(fd4, fd6);
    mapUpdate(fd4, tpLpm4Key.encode({ prefixLength: 16, addr: ipv4Bytes('10.9.0.0') }), u8Value.encode(7));
    mapUpdate(fd6, tpLpm6Key.encode({ prefixLength: 48, addr: ipv6Bytes('fd00:1:2::') }), u8Value.encode(9));
    const hit4 = mapLookup(fd4, tpLpm4Key.encode({ prefixLength: 32, addr: ipv4Bytes('10.9.3.4') }), 1);
    const miss4 = mapLookup(fd4, tpLpm4Key.encode({ prefixLength: 32, addr: ipv4Bytes('10.10.3.4') }), 1);
    const hit6 = mapLookup(fd6, tpLpm6Key.encode({ prefixLength: 128, addr: ipv6Bytes('fd00:1:2::99') }), 1);
    const miss6 = mapLookup(fd6, tpLpm6Key.encode({ prefixLength: 128, addr: ipv6Bytes('fd00:1:3::99') }), 1);
    expect(hit4?.[0]).toBe(7);
    expect(miss4).toBeUndefined();
    expect(hit6?.[0]).toBe(9);
    expect(miss6).toBeUndefined();
    expect(mapKeys(fd4, 8).map((k) => tpLpm4Key.decode(k))).toEqual([{ prefixLength: 16, addr: ipv4Bytes('10.9.0.0') }]);
  });
});
