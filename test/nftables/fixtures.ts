/** Golden-file variants of the nftables ruleset (the iptables engine's variants, plus ipv4-only). */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TransparentProxyConfig } from '../../src/config/types.js';
import { defaultConfig, everyFlagConfig } from '../iptables/fixtures.js';

export const GOLDEN_DIR = join(dirname(fileURLToPath(import.meta.url)), 'golden');

/** The golden variants: name → config (the same variants as the iptables engine's golden files). */
export const VARIANTS: Record<string, () => TransparentProxyConfig> = {
  default: defaultConfig,
  'every-flag': everyFlagConfig,
  'all-dns': () => {
    const cfg = defaultConfig();
    cfg.dns.mode = 'all';
    return cfg;
  },
  'all-dns-no-zone-split': () => {
    const cfg = defaultConfig();
    cfg.dns.mode = 'all';
    cfg.dns.conntrackZoneSplit = false;
    return cfg;
  },
  'inbound-disabled': () => {
    const cfg = everyFlagConfig();
    cfg.inbound.enabled = false;
    return cfg;
  },
  'ipv4-only': () => {
    const cfg = everyFlagConfig();
    cfg.ipFamilyMode = 'ipv4';
    return cfg;
  },
};

