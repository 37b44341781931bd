/** Golden-file variants of the nftables ruleset: the iptables engine's, plus ipv4-only. */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TransparentProxyConfig } from '../../src/config/types.js';
import { everyFlagConfig, GOLDEN_VARIANTS } from '../iptables/fixtures.js';

export const GOLDEN_DIR = join(dirname(fileURLToPath(import.meta.url)), 'golden');

export const VARIANTS: Record<string, () => TransparentProxyConfig> = {
  ...GOLDEN_VARIANTS,
  'ipv4-only': () => {
    const cfg = everyFlagConfig();
    cfg.ipFamilyMode = 'ipv4';
    return cfg;
  },
};
