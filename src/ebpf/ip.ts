/**
 * Address text ↔ network-order bytes for map keys. Parsing and RFC 5952 printing
 * are src/config/net.ts's; this only adapts them to Buffers and adds prefix masking.
 */
import { formatAddress, parseAddress } from '../net/address.js';
import type { IpFamily } from '../config/types.js';

function addressBytes(text: string, family: IpFamily): Buffer {
  const parsed = parseAddress(text);
  if (parsed?.family !== family) throw new TypeError(`not an ${family === 'ipv4' ? 'IPv4' : 'IPv6'} address: ${text}`);
  return Buffer.from(parsed.bytes);
}

export function ipv4Bytes(text: string): Buffer {
  return addressBytes(text, 'ipv4');
}

export function ipv6Bytes(text: string): Buffer {
  return addressBytes(text, 'ipv6');
}

export function ipv4Text(b: Buffer): string {
  return formatAddress({ family: 'ipv4', bytes: [...b.subarray(0, 4)] });
}

/** Canonical RFC 5952 text (longest zero run compressed). */
export function ipv6Text(b: Buffer): string {
  return formatAddress({ family: 'ipv6', bytes: [...b.subarray(0, 16)] });
}

/** Zero the host bits so an LPM key holds the network address. */
export function maskPrefix(addr: Buffer, prefixLength: number): Buffer {
  const out = Buffer.from(addr);
  for (let bit = prefixLength; bit < out.length * 8; bit++) {
    out[bit >> 3]! &= ~(0x80 >> (bit & 7));
  }
  return out;
}
