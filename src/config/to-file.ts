/**
 * TransparentProxyConfig → the config file that resolves back to it (kumactl keys).
 * `tpctl status --json` prints this, `--persist` writes it, and `install --config`
 * reads it back: resolveConfig(toConfigFile(cfg)) equals cfg (tested).
 */
import type { ConfigFile } from './schema.js';
import type { Cidr, PortRange, TransparentProxyConfig, UidPortExclusion, UidRange } from './types.js';

const range = (r: PortRange | UidRange): string => (r.from === r.to ? `${r.from}` : `${r.from}-${r.to}`);
const ports = (rs: PortRange[]): string => rs.map(range).join(',');
const cidr = (c: Cidr): string => `${c.address}/${c.prefixLength}`;

/** One rule per uid range, always `PROTO:PORTS:UIDS` (the grammar's three-part form). */
function uidRules(ex: UidPortExclusion): string[] {
  const proto = ex.protocol === 'all' ? '*' : ex.protocol;
  const p = ex.ports.length === 0 ? '*' : ports(ex.ports);
  return ex.uids.map((u) => `${proto}:${p}:${range(u)}`);
}

export function toConfigFile(cfg: TransparentProxyConfig): ConfigFile {
  const file: ConfigFile = {
    kumaDPUser: String(cfg.kumaDpUser.uid),
    ipFamilyMode: cfg.ipFamilyMode,
    redirect: {
      inbound: {
        enabled: cfg.inbound.enabled,
        port: cfg.inbound.port,
        excludePorts: ports(cfg.inbound.excludePorts),
        excludePortsForIPs: cfg.inbound.excludeIps.map(cidr),
      },
      outbound: {
        port: cfg.outbound.port,
        excludePorts: ports(cfg.outbound.excludePorts),
        excludePortsForIPs: cfg.outbound.excludeIps.map(cidr),
        excludePortsForUIDs: cfg.outbound.excludePortsForUids.flatMap(uidRules),
      },
      dns: {
        enabled: cfg.dns.mode === 'resolvconf',
        captureAll: cfg.dns.mode === 'all',
        port: cfg.dns.port,
        skipConntrackZoneSplit: !cfg.dns.conntrackZoneSplit,
        resolvConfigPath: cfg.dns.resolvConfPath,
      },
      vnet: { networks: cfg.vnet.map((n) => `${n.iface}:${cidr(n.cidr)}`) },
    },
    log: { enabled: cfg.iptablesLogs },
    retry: { maxRetries: cfg.retry.maxRetries, sleepBetweenRetries: `${cfg.retry.sleepBetweenRetriesMs}ms` },
    wait: cfg.retry.wait,
    waitInterval: cfg.retry.waitInterval,
    dropInvalidPackets: cfg.dropInvalidPackets,
    storeFirewalld: cfg.storeFirewalld,
    iptablesBackend: cfg.iptablesBackend,
  };
  // iptables and ebpf follow from the keys above; nftables must be named to come back.
  if (cfg.engine === 'nftables') file.engine = 'nftables';
  if (cfg.ebpf.enabled) {
    const ips = [cfg.ebpf.instanceIp.ipv4, cfg.ebpf.instanceIp.ipv6].filter((x): x is string => x !== undefined);
    file.ebpf = {
      enabled: true,
      instanceIP: ips.join(','),
      bpffsPath: cfg.ebpf.bpffsPath,
      programsSourcePath: cfg.ebpf.programsSourcePath,
      ...(cfg.ebpf.cgroupPath !== undefined ? { cgroupPath: cfg.ebpf.cgroupPath } : {}),
      ...(cfg.ebpf.tcAttachIface !== undefined ? { tcAttachIface: cfg.ebpf.tcAttachIface } : {}),
    };
  }
  return file;
}
