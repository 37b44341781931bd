/**
 * The nameservers of a resolv.conf file: the servers `--redirect-dns` captures.
 */
import { canonicalAddress } from '../net/address.js';

export interface Nameservers {
  ipv4: string[];
  ipv6: string[];
}

/**
 * `nameserver ADDR` lines, canonical and de-duplicated, in file order. A zone suffix
 * (fe80::1%eth0) is dropped: packet filters match the address alone. Lines that are
 * not addresses are ignored, as the libc resolver ignores them.
 */
export function parseResolvConf(text: string): Nameservers {
  const out: Nameservers = { ipv4: [], ipv6: [] };
  for (const rawLine of text.split('\n')) {
    const line = rawLine.replace(/[#;].*$/, '').trim();
    const m = /^nameserver\s+(\S+)/.exec(line);
    if (!m?.[1]) continue;
    const addr = canonicalAddress(m[1].replace(/%.*$/, ''));
    if (!addr) continue;
    const list = out[addr.family];
    if (!list.includes(addr.address)) list.push(addr.address);
  }
  return out;
}
