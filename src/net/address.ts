/**
 * IP address and CIDR parsing to canonical text: the leaf module config, host, the
 * engines and verify share (it imports nothing of tpctl but ValueError). node:net's isIP decides what is an
 * address; the byte conversion here exists so prefixes can be masked and IPv6 printed
 * in one canonical (RFC 5952) form, whatever spelling the user typed.
 */
import { isIP } from 'node:net';
import { quoteValue, ValueError } from '../value-error.js';

export type IpFamily = 'ipv4' | 'ipv6';

/** An address with a prefix length, canonical text form (`10.0.0.0`, `fd00::`). */
export interface Cidr {
  family: IpFamily;
  address: string;
  prefixLength: number;
}

export interface ParsedAddress {
  family: IpFamily;
  bytes: number[];
}

const CIDR_EXAMPLES = 'expected an IPv4 or IPv6 address or CIDR, e.g. 10.0.0.1, 172.16.0.0/16, fd00::/8';

/** Parses an address without prefix; undefined when `text` is not one (zones like %eth0 are refused). */
export function parseAddress(text: string): ParsedAddress | undefined {
  if (text.includes('%')) return undefined;
  const version = isIP(text);
  if (version === 4) return { family: 'ipv4', bytes: ipv4Bytes(text) };
  if (version === 6) return { family: 'ipv6', bytes: ipv6Bytes(text) };
  return undefined;
}

function ipv4Bytes(text: string): number[] {
  return text.split('.').map((part) => Number(part));
}

function ipv6Bytes(text: string): number[] {
  let head = text;
  let tailV4: number[] = [];
  // A trailing dotted quad (::ffff:1.2.3.4) stands for the last two groups.
  const lastColon = text.lastIndexOf(':');
  if (text.slice(lastColon + 1).includes('.')) {
    tailV4 = ipv4Bytes(text.slice(lastColon + 1));
    head = text.slice(0, lastColon + 1);
    if (head.endsWith(':') && !head.endsWith('::')) head = head.slice(0, -1);
  }
  const groupsWanted = 8 - tailV4.length / 2;
  const [left = '', right] = head.split('::');
  const leftGroups = left === '' ? [] : left.split(':');
  const rightGroups = right === undefined || right === '' ? [] : right.split(':');
  const zeros = right === undefined ? 0 : groupsWanted - leftGroups.length - rightGroups.length;
  const groups = [...leftGroups, ...Array<string>(zeros).fill('0'), ...rightGroups];
  const bytes: number[] = [];
  for (const g of groups) {
    const v = parseInt(g, 16);
    bytes.push(v >> 8, v & 0xff);
  }
  return [...bytes, ...tailV4];
}

export function formatAddress(addr: ParsedAddress): string {
  if (addr.family === 'ipv4') return addr.bytes.join('.');
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((addr.bytes[i] ?? 0) << 8) | (addr.bytes[i + 1] ?? 0));
  // RFC 5952: compress the longest run (first one on ties) of two or more zero groups.
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  const left = hex.slice(0, bestStart).join(':');
  const right = hex.slice(bestStart + bestLen).join(':');
  return `${left}::${right}`;
}

/** True for ::ffff:a.b.c.d, the IPv6 spelling of an IPv4 address (RFC 4291 2.5.5.2). */
function isV4Mapped(addr: ParsedAddress): boolean {
  if (addr.family !== 'ipv6') return false;
  return addr.bytes.slice(0, 10).every((b) => b === 0) && addr.bytes[10] === 0xff && addr.bytes[11] === 0xff;
}

/**
 * An IPv4-mapped IPv6 address becomes the IPv4 address it stands for: no packet on
 * the wire carries the mapped form, so an ip6tables rule or IPv6 map entry with it
 * could never match and the IPv4 address would silently go unhandled.
 */
function unmapped(addr: ParsedAddress): ParsedAddress {
  return isV4Mapped(addr) ? { family: 'ipv4', bytes: addr.bytes.slice(12) } : addr;
}

/** Canonical text of an address (IPv4-mapped IPv6 as IPv4), or undefined when it is not one. */
export function canonicalAddress(text: string): { family: IpFamily; address: string } | undefined {
  const parsed = parseAddress(text.trim());
  if (!parsed) return undefined;
  const addr = unmapped(parsed);
  return { family: addr.family, address: formatAddress(addr) };
}

function maskBytes(bytes: number[], prefixLength: number): number[] {
  return bytes.map((b, i) => {
    const bitsHere = Math.min(8, Math.max(0, prefixLength - i * 8));
    return bitsHere === 0 ? 0 : b & ((0xff << (8 - bitsHere)) & 0xff);
  });
}

/**
 * `addr` or `addr/len`. Host bits are cleared (10.1.2.3/8 → 10.0.0.0/8): that is what
 * iptables and an LPM trie would match anyway, and the canonical form keeps reinstalls
 * byte-identical.
 */
export function parseCidr(text: string, opts: { requirePrefix?: boolean } = {}): Cidr {
  const trimmed = text.trim();
  const slash = trimmed.indexOf('/');
  const addrText = slash < 0 ? trimmed : trimmed.slice(0, slash);
  const parsed = parseAddress(addrText);
  if (!parsed) throw new ValueError(`${quoteValue(trimmed)} is not an IP address or CIDR`, CIDR_EXAMPLES);
  const max = parsed.family === 'ipv4' ? 32 : 128;
  let prefixLength = max;
  if (slash < 0) {
    if (opts.requirePrefix) {
      throw new ValueError(`${quoteValue(trimmed)} has no prefix length`, `expected a CIDR such as 172.17.0.0/16`);
    }
  } else {
    const lenText = trimmed.slice(slash + 1);
    if (!/^\d{1,3}$/.test(lenText) || Number(lenText) > max) {
      throw new ValueError(
        `${quoteValue(trimmed)} has an invalid prefix length`,
        `expected /0 to /${max} for ${parsed.family === 'ipv4' ? 'IPv4' : 'IPv6'}`,
      );
    }
    prefixLength = Number(lenText);
  }
  let addr = parsed;
  if (isV4Mapped(parsed)) {
    // ::ffff:10.0.0.0/104 is 10.0.0.0/8; a shorter prefix reaches beyond the mapped block.
    if (prefixLength < 96) {
      throw new ValueError(
        `${quoteValue(trimmed)} is an IPv4-mapped address with a prefix shorter than /96`,
        'write the IPv4 form, e.g. 10.0.0.0/8 (::ffff:0:0/96 prefixes /96 to /128 are converted to IPv4)',
      );
    }
    addr = unmapped(parsed);
    prefixLength -= 96;
  }
  const network = formatAddress({ family: addr.family, bytes: maskBytes(addr.bytes, prefixLength) });
  return { family: addr.family, address: network, prefixLength };
}

export function formatCidr(c: Cidr): string {
  return `${c.address}/${c.prefixLength}`;
}
