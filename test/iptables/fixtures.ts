import type { TransparentProxyConfig } from '../../src/config/types.js';
import { defaultConfig } from '../fixtures/config.js';

export { defaultConfig } from '../fixtures/config.js';

/** Every iptables flag set at once (DNS limited to resolv.conf servers). */
export function everyFlagConfig(): TransparentProxyConfig {
  const cfg = defaultConfig();
  cfg.inbound.excludePorts = [{ from: 22, to: 22 }, { from: 8000, to: 8010 }];
  cfg.inbound.excludeIps = [
    { family: 'ipv4', address: '192.168.10.0', prefixLength: 24 },
    { family: 'ipv6', address: 'fd00:10::', prefixLength: 64 },
  ];
  cfg.outbound.excludePorts = [{ from: 25, to: 25 }, { from: 9000, to: 9100 }];
  cfg.outbound.excludeIps = [
    { family: 'ipv4', address: '10.20.0.0', prefixLength: 16 },
    { family: 'ipv4', address: '172.16.0.5', prefixLength: 32 },
    { family: 'ipv6', address: 'fd00:20::', prefixLength: 48 },
  ];
  cfg.outbound.excludePortsForUids = [
    { protocol: 'tcp', ports: [{ from: 80, to: 80 }, { from: 443, to: 443 }], uids: [{ from: 1000, to: 1000 }] },
    { protocol: 'udp', ports: [], uids: [{ from: 2000, to: 2010 }] },
    { protocol: 'all', ports: [{ from: 5000, to: 5005 }], uids: [{ from: 3000, to: 3000 }, { from: 3100, to: 3100 }] },
  ];
  cfg.dns = {
    mode: 'resolvconf',
    port: 15053,
    servers: { ipv4: ['10.0.0.53', '8.8.8.8'], ipv6: ['fd00::53'] },
    resolvConfPath: '/etc/resolv.conf',
    conntrackZoneSplit: true,
  };
  cfg.vnet = [
    { iface: 'docker0', cidr: { family: 'ipv4', address: '172.17.0.0', prefixLength: 16 } },
    { iface: 'br+', cidr: { family: 'ipv6', address: 'fd00:99::', prefixLength: 64 } },
  ];
  cfg.dropInvalidPackets = true;
  cfg.iptablesLogs = true;
  return cfg;
}

/** The settings each engine's golden files are rendered for: name → config. */
export const GOLDEN_VARIANTS: Record<string, () => TransparentProxyConfig> = {
  default: defaultConfig,
  'every-flag': everyFlagConfig,
  'all-dns-no-zone-split': () => {
    const cfg = defaultConfig();
    cfg.dns.mode = 'all';
    cfg.dns.conntrackZoneSplit = false;
    return cfg;
  },
  'all-dns': () => {
    const cfg = defaultConfig();
    cfg.dns.mode = 'all';
    return cfg;
  },
  'inbound-disabled': () => {
    const cfg = everyFlagConfig();
    cfg.inbound.enabled = false;
    return cfg;
  },
};
