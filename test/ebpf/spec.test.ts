/** The pure half: desired map contents, limits and the dry-run text. */
import { describe, expect, it } from 'vitest';
import { buildEbpfSpec, configHash, describeEbpfPlan, mapCapacities, mapCapacity, mapSpec, unusedPrograms, type NetnsCheck } from '../../src/ebpf/spec.js';
import { TP_DNS_LISTED, TP_F_DNS4, TP_F_DNS6, TP_F_INBOUND, TP_F_IPV4, TP_F_IPV6, portKey, tpConfig, tpLpm4Key, tpUidPortKey } from '../../src/ebpf/codecs.js';
import { ConfigError } from '../../src/errors.js';
import { baseConfig } from './sandbox.js';

const cfg = () => baseConfig({ bpffsPath: '/run/tpctl/bpf', cgroupPath: '/sys/fs/cgroup/unified/x' });
const entries = (spec: ReturnType<typeof buildEbpfSpec>, name: string) => spec.maps.find((m) => m.name === name)!.entries;

describe('buildEbpfSpec', () => {
  it('fills tp_cfg_v1 from the config', () => {
    const spec = buildEbpfSpec(cfg());
    const c = tpConfig.decode(entries(spec, 'tp_cfg_v1')[0]!.value);
    expect(c).toMatchObject({ proxyUid: 5678, outboundPort: 15001, inboundPort: 15006, dnsPort: 15053, dnsMode: TP_DNS_LISTED });
    expect(c.flags).toBe(TP_F_IPV4 | TP_F_IPV6 | TP_F_INBOUND | TP_F_DNS4 | TP_F_DNS6);
    expect([...c.instanceIp4]).toEqual([10, 77, 0, 2]);
  });

  it('turns DNS redirection on per family as the rule engines do: all, or a listed server of the family', () => {
    const dnsFlags = (c: ReturnType<typeof cfg>): number => tpConfig.decode(entries(buildEbpfSpec(c), 'tp_cfg_v1')[0]!.value).flags & (TP_F_DNS4 | TP_F_DNS6);
    const c = cfg();
    c.dns.servers.ipv6 = [];
    expect(dnsFlags(c)).toBe(TP_F_DNS4);
    c.dns.mode = 'all';
    expect(dnsFlags(c)).toBe(TP_F_DNS4 | TP_F_DNS6);
    c.ipFamilyMode = 'ipv4';
    expect(dnsFlags(c)).toBe(TP_F_DNS4);
    c.dns.mode = 'off';
    expect(dnsFlags(c)).toBe(0);
  });

  it('expands port ranges, masks CIDRs and expands uid exclusions', () => {
    const c = cfg();
    c.outbound.excludePorts = [{ from: 8000, to: 8002 }, { from: 8001, to: 8001 }];
    c.outbound.excludeIps = [{ family: 'ipv4', address: '10.9.8.7', prefixLength: 16 }];
    c.outbound.excludePortsForUids = [{ protocol: 'all', ports: [{ from: 53, to: 54 }], uids: [{ from: 7, to: 8 }] }];
    const spec = buildEbpfSpec(c);
    expect(entries(spec, 'tp_out_port_v1').map((e) => portKey.decode(e.key))).toEqual([8000, 8001, 8002]);
    expect(entries(spec, 'tp_out_cidr4_v1').map((e) => tpLpm4Key.decode(e.key))).toEqual([{ prefixLength: 16, addr: Buffer.from([10, 9, 0, 0]) }]);
    expect(entries(spec, 'tp_uid_excl_v1')).toHaveLength(2 * 2 * 2);
    expect(entries(spec, 'tp_uid_excl_v1').map((e) => tpUidPortKey.decode(e.key))).toContainEqual({ uid: 8, port: 54, proto: 17 });
  });

  it('uses port 0 for a uid exclusion without ports', () => {
    const spec = buildEbpfSpec(cfg());
    expect(entries(spec, 'tp_uid_excl_v1').map((e) => tpUidPortKey.decode(e.key))).toContainEqual({ uid: 1000, port: 0, proto: 6 });
  });

  it('sizes the uid map to the exclusions, and refuses expansions beyond what tpctl writes to one map', () => {
    const c = cfg();
    c.outbound.excludePortsForUids = [{ protocol: 'all', ports: [{ from: 1, to: 1000 }], uids: [{ from: 1, to: 100 }] }];
    const spec = buildEbpfSpec(c);
    expect(entries(spec, 'tp_uid_excl_v1')).toHaveLength(200_000);
    expect(mapCapacities(spec.maps).get('tp_uid_excl_v1')).toBe(262_144);
    c.outbound.excludePortsForUids = [{ protocol: 'all', ports: [{ from: 1, to: 1000 }], uids: [{ from: 1, to: 100_000 }] }];
    expect(() => buildEbpfSpec(c)).toThrow(ConfigError);
    expect(() => buildEbpfSpec(c)).toThrow(/200000000 .* more than tpctl writes to one eBPF map \(16777216\)/);
  });

  it('has no CIDR ceiling: 100,000 excluded CIDRs get a map of the next power of two', () => {
    const c = cfg();
    c.outbound.excludeIps = Array.from({ length: 100_000 }, (_, i) => ({
      family: 'ipv4' as const,
      address: `10.${128 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`,
      prefixLength: 32,
    }));
    const spec = buildEbpfSpec(c);
    expect(entries(spec, 'tp_out_cidr4_v1')).toHaveLength(100_000);
    const caps = mapCapacities(spec.maps);
    expect(caps.get('tp_out_cidr4_v1')).toBe(131_072);
    // Maps within their declared size keep it; the ARRAY and runtime maps never change.
    expect(caps.get('tp_in_cidr4_v1')).toBe(mapSpec('tp_in_cidr4_v1').maxEntries);
    expect(mapCapacity(mapSpec('tp_cfg_v1'), 5)).toBe(1);
    expect(mapCapacity(mapSpec('tp_flow_v1'), 1_000_000)).toBe(65_536);
    expect(mapCapacity(mapSpec('tp_out_cidr6_v1'), 16_385)).toBe(32_768);
  });

  it('only lists DNS servers in resolvconf mode, and drops IPv6 in ipv4 mode', () => {
    const c = cfg();
    c.ipFamilyMode = 'ipv4';
    const spec = buildEbpfSpec(c);
    expect(entries(spec, 'tp_dns_srv4_v1')).toHaveLength(1);
    expect(entries(spec, 'tp_dns_srv6_v1')).toHaveLength(0);
    expect(tpConfig.decode(entries(spec, 'tp_cfg_v1')[0]!.value).flags & TP_F_IPV6).toBe(0);
    c.dns.mode = 'all';
    expect(entries(buildEbpfSpec(c), 'tp_dns_srv4_v1')).toHaveLength(0);
  });

  it('attaches sk_lookup to the netns and the setsockopt/egress guards to the cgroup', () => {
    const hooks = Object.fromEntries(buildEbpfSpec(cfg()).programs.map((p) => [p.name, `${p.hook} ${p.section}`]));
    expect(hooks).toMatchObject({
      tp_sk_lookup: 'netns sk_lookup',
      tp_setsockopt: 'cgroup cgroup/setsockopt',
      tp_egress: 'cgroup cgroup_skb/egress',
    });
  });

  it('writes the netns cookie it is given into tp_netns_v1 (0 for a plan)', () => {
    expect(entries(buildEbpfSpec(cfg(), true, 0x1234n), 'tp_netns_v1')[0]!.value.readBigUInt64LE(0)).toBe(0x1234n);
    expect(entries(buildEbpfSpec(cfg()), 'tp_netns_v1')[0]!.value.readBigUInt64LE(0)).toBe(0n);
  });

  it('attaches the sockops program of the netns check it is given, never both, and hashes them apart', () => {
    const sockops = (check: NetnsCheck) => buildEbpfSpec(cfg(), true, 7n, check).programs.filter((p) => p.section === 'sockops').map((p) => p.name);
    expect(sockops('cookie')).toEqual(['tp_sockops']);
    expect(sockops('inode')).toEqual(['tp_sockops_ino']);
    expect([...unusedPrograms('cookie')]).toEqual(['tp_sockops_ino']);
    expect([...unusedPrograms('inode')]).toEqual(['tp_sockops']);
    const target = { bpffsPath: '/b', cgroupPath: '/c', programsSourcePath: '/p', objectsDigest: 'd' };
    expect(configHash(buildEbpfSpec(cfg(), true, 7n, 'inode'), target)).not.toBe(configHash(buildEbpfSpec(cfg(), true, 7n, 'cookie'), target));
  });

  it('leaves out the tc program when inbound is off, and warns about iptables-only options', () => {
    const c = cfg();
    c.inbound.enabled = false;
    c.vnet = [{ iface: 'docker0', cidr: { family: 'ipv4', address: '172.17.0.0', prefixLength: 16 } }];
    c.dropInvalidPackets = true;
    c.storeFirewalld = true; // warned about by the config layer, not again here
    const spec = buildEbpfSpec(c);
    expect(spec.programs.map((p) => p.name)).not.toContain('tp_tc_ingress');
    expect(spec.programs.map((p) => p.name)).not.toContain('tp_sk_lookup');
    expect(spec.programs.map((p) => p.name)).toContain('tp_egress');
    expect(spec.warnings).toEqual(['--vnet is ignored with --ebpf-enabled', '--drop-invalid-packets is ignored with --ebpf-enabled']);
  });

  it('turns IPv6 off with a warning on a host without IPv6', () => {
    const spec = buildEbpfSpec(cfg(), false);
    expect(spec.ipv6).toBe(false);
    expect(spec.warnings.join()).toContain('IPv6 is not available');
  });

  it('hashes settings: same config same hash, any map change a new one', () => {
    const target = { bpffsPath: '/b', cgroupPath: '/c', programsSourcePath: '/p', objectsDigest: 'd', tc: { iface: 'eth0', ifindex: 2 } };
    const a = configHash(buildEbpfSpec(cfg()), target);
    expect(configHash(buildEbpfSpec(cfg()), target)).toBe(a);
    const c = cfg();
    c.inbound.excludePorts = [{ from: 9, to: 9 }];
    expect(configHash(buildEbpfSpec(c), target)).not.toBe(a);
  });

  it('map specs follow the contract', () => {
    expect(mapSpec('tp_uid_excl_v1').maxEntries).toBe(65536);
    expect(mapSpec('tp_dns_srv6_v1').keySize).toBe(16);
  });
});

describe('describeEbpfPlan', () => {
  it('says what would be attached and written', () => {
    const text = describeEbpfPlan(cfg());
    expect(text).toContain('attach tp_connect4 (cgroup/connect4) to cgroup /sys/fs/cgroup/unified/x with a pinned bpf_link');
    expect(text).toContain('attach tp_tc_ingress (tc) to the interface holding 10.77.0.2 ingress');
    expect(text).toContain('map tp_out_port_v1: 1 entry');
    expect(text).toContain('  10.9.0.0/16');
  });
});
