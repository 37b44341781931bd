import { describe, expect, it } from 'vitest';
import { resolveConfig, type HostLookups } from '../../src/config/resolve.js';
import { defaultProgramsSourcePath } from '../../src/config/defaults.js';
import { toConfigFile } from '../../src/config/to-file.js';
import type { TransparentProxyConfig } from '../../src/config/types.js';
import { staticUserLookup } from '../../src/host/users.js';
import { defaultConfig, everyFlagConfig } from '../iptables/fixtures.js';

const host = (resolv: string): HostLookups => ({
  users: staticUserLookup([{ name: 'kuma-dp', uid: 5678 }]),
  readResolvConf: () => resolv,
});

/** resolveConfig(toConfigFile(cfg)) must give cfg back: status --json → install --config round-trips. */
function roundTrip(cfg: TransparentProxyConfig, resolv = 'nameserver 10.0.0.53\nnameserver 8.8.8.8\nnameserver fd00::53\n'): TransparentProxyConfig {
  return resolveConfig({ files: [{ source: 'status.json', data: JSON.parse(JSON.stringify(toConfigFile(cfg))) }] }, host(resolv)).config;
}

/** iptables settings carry no eBPF block: the eBPF paths come back as defaults. */
const withDefaultEbpf = (cfg: TransparentProxyConfig): TransparentProxyConfig => ({ ...cfg, ebpf: { ...cfg.ebpf, programsSourcePath: defaultProgramsSourcePath() } });

describe('toConfigFile', () => {
  it('round-trips the defaults', () => {
    const cfg = withDefaultEbpf(defaultConfig());
    const back = roundTrip(cfg);
    // resolveConfig names the engine it chose; the fixtures leave it implied.
    expect({ ...back, kumaDpUser: { uid: back.kumaDpUser.uid } }).toEqual({ ...cfg, engine: 'iptables', kumaDpUser: { uid: 5678 } });
  });

  it('round-trips every iptables setting', () => {
    const cfg = withDefaultEbpf(everyFlagConfig());
    // Flags and files give one uid range per exclusion entry; the fixture packs two in one.
    cfg.outbound.excludePortsForUids = cfg.outbound.excludePortsForUids.flatMap((ex) => ex.uids.map((u) => ({ ...ex, uids: [u] })));
    const back = roundTrip(cfg);
    expect({ ...back, kumaDpUser: { uid: back.kumaDpUser.uid } }).toEqual({ ...cfg, engine: 'iptables', kumaDpUser: { uid: cfg.kumaDpUser.uid } });
  });

  it('round-trips the nftables engine (it must be named: nothing else in the file implies it)', () => {
    const cfg = withDefaultEbpf({ ...everyFlagConfig(), engine: 'nftables', storeFirewalld: false });
    cfg.outbound.excludePortsForUids = cfg.outbound.excludePortsForUids.flatMap((ex) => ex.uids.map((u) => ({ ...ex, uids: [u] })));
    expect(toConfigFile(cfg).engine).toBe('nftables');
    const back = roundTrip(cfg);
    expect({ ...back, kumaDpUser: { uid: back.kumaDpUser.uid } }).toEqual({ ...cfg, kumaDpUser: { uid: cfg.kumaDpUser.uid } });
  });

  it('round-trips eBPF settings and --redirect-all-dns-traffic', () => {
    const cfg = defaultConfig();
    cfg.ebpf = { enabled: true, instanceIp: { ipv4: '10.0.0.5', ipv6: 'fd00::5' }, programsSourcePath: '/opt/tpctl/bpf', bpffsPath: '/run/x/bpf', cgroupPath: '/sys/fs/cgroup/mesh', tcAttachIface: 'eth1' };
    cfg.dns.mode = 'all';
    cfg.inbound.enabled = false;
    const back = roundTrip(cfg);
    expect(back.ebpf).toEqual(cfg.ebpf);
    expect(back.dns.mode).toBe('all');
    expect(back.inbound.enabled).toBe(false);
  });

  it('writes uid exclusions in the three-part grammar, one per uid range', () => {
    const cfg = defaultConfig();
    cfg.outbound.excludePortsForUids = [{ protocol: 'all', ports: [], uids: [{ from: 1, to: 3 }, { from: 7, to: 7 }] }];
    expect(toConfigFile(cfg).redirect?.outbound?.excludePortsForUIDs).toEqual(['*:*:1-3', '*:*:7']);
  });
});
