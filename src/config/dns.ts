/** DNS settings questions every engine asks the same way. */
import type { IpFamily, TransparentProxyConfig } from './types.js';

/**
 * DNS is redirected for a family when every :53 is captured or resolv.conf lists a
 * server of that family (with none, Kuma turns DNS capture off for the family).
 */
export function dnsEnabledFor(cfg: TransparentProxyConfig, family: IpFamily): boolean {
  if (cfg.dns.mode === 'all') return true;
  return cfg.dns.mode === 'resolvconf' && cfg.dns.servers[family].length > 0;
}
