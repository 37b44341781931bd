/**
 * Parsers for every kind of setting value. Each takes what a flag (string, or true for
 * a bare boolean flag) or a config file (string, number, boolean, list) can hold and
 * returns the typed value, or throws a ValueError saying what is wrong and what is
 * allowed. No parser knows where the value came from.
 */
import type { Cidr, IpFamilyMode, PortRange, UidPortExclusion, UidRange, VirtualNetwork } from './types.js';
import { canonicalAddress, parseCidr } from '../net/address.js';
import { quoteValue, ValueError } from '../value-error.js';

const q = quoteValue;

export const MAX_UID = 4294967294; // (uid_t)-1 is reserved as "no uid"

function scalarText(v: unknown, expected: string): string {
  if (typeof v === 'string') return v.trim();
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  throw new ValueError(`${describeType(v)} is not allowed here`, expected);
}

function describeType(v: unknown): string {
  if (Array.isArray(v)) return 'a list';
  if (v === null) return 'null';
  if (typeof v === 'object') return 'a mapping';
  return `${typeof v} ${q(v)}`;
}

/** Items of a list setting: a list, or one comma-separated string (or a single number). */
function listItems(v: unknown, expected: string, splitCommas: boolean): string[] {
  const raw = Array.isArray(v) ? v : [v];
  const items: string[] = [];
  for (const item of raw) {
    const text = scalarText(item, expected);
    // An empty value is an empty list (a flag clearing a file's list); an empty item
    // inside a list (`80,,443`, `80,`) is most likely a typo and is refused.
    if (text === '') continue;
    for (const piece of splitCommas ? text.split(',') : [text]) {
      const t = piece.trim();
      if (t === '') throw new ValueError(`${q(text)} has an empty item between commas`, expected);
      items.push(t);
    }
  }
  return items;
}

export function parseBool(v: unknown): boolean {
  if (typeof v === 'boolean') return v;
  if (typeof v === 'string') {
    const t = v.trim().toLowerCase();
    if (t === 'true' || t === '1' || t === 't') return true;
    if (t === 'false' || t === '0' || t === 'f') return false;
  }
  throw new ValueError(`${q(v)} is not a boolean`, 'expected true or false');
}

const PORT_ALLOWED = 'expected an integer 1-65535';

function portNumber(text: string, whole: string): number {
  if (!/^\d+$/.test(text)) {
    const where = text === whole ? '' : ` in ${q(whole)}`;
    throw new ValueError(`${q(text)}${where} is not a port`, PORT_ALLOWED);
  }
  const n = Number(text);
  if (n < 1 || n > 65535) {
    const where = text === whole ? '' : ` in ${q(whole)}`;
    throw new ValueError(`${q(text)}${where} is out of range`, PORT_ALLOWED);
  }
  return n;
}

export function parsePort(v: unknown): number {
  const text = scalarText(v, PORT_ALLOWED);
  return portNumber(text, text);
}

const PORT_LIST_ALLOWED = 'expected comma-separated ports or ranges a-b, each 1-65535';

/** `80,443,8000-8100`; an empty value is an empty list (so a flag can clear a file's list). */
export function parsePortList(v: unknown): PortRange[] {
  const items = listItems(v, PORT_LIST_ALLOWED, true);
  return items.map((item) => parsePortRange(item));
}

function parsePortRange(item: string): PortRange {
  const m = /^(\d+)-(\d+)$/.exec(item);
  if (!m) {
    if (!/^\d+$/.test(item)) throw new ValueError(`${q(item)} is not a port or range`, PORT_LIST_ALLOWED);
    const p = portNumber(item, item);
    return { from: p, to: p };
  }
  const from = portNumber(m[1] ?? '', item);
  const to = portNumber(m[2] ?? '', item);
  if (from > to) throw new ValueError(`range ${q(item)} is reversed`, 'expected a-b with a ≤ b');
  return { from, to };
}

const UINT_ALLOWED = 'expected a whole number ≥ 0';

export function parseUint(v: unknown): number {
  const text = scalarText(v, UINT_ALLOWED);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(Number(text))) {
    throw new ValueError(`${q(text)} is not a whole number`, UINT_ALLOWED);
  }
  return Number(text);
}

export function parseEnum<T extends string>(v: unknown, allowed: readonly T[]): T {
  const expected = `expected ${allowed.slice(0, -1).join(', ')} or ${allowed[allowed.length - 1]}`;
  const text = scalarText(v, expected).toLowerCase();
  const hit = allowed.find((a) => a === text);
  if (!hit) throw new ValueError(`${q(text)} is not allowed`, expected);
  return hit;
}

export function parseIpFamilyMode(v: unknown): IpFamilyMode {
  return parseEnum(v, ['dualstack', 'ipv4'] as const);
}

export function parseCidrList(v: unknown): Cidr[] {
  const items = listItems(v, 'expected a comma-separated list of IP addresses or CIDRs', true);
  return items.map((item) => parseCidr(item));
}

const DURATION_ALLOWED = 'expected a duration such as 2s, 500ms, 1m30s, or a number of seconds';
const UNIT_MS: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1, us: 0.001, 'µs': 0.001, ns: 0.000001 };

/** Go-style durations (what kumactl accepts) plus plain numbers meaning seconds; result in ms. */
export function parseDurationMs(v: unknown): number {
  if (typeof v === 'number') {
    if (!Number.isFinite(v) || v < 0) throw new ValueError(`${q(v)} is not a duration`, DURATION_ALLOWED);
    return Math.round(v * 1000);
  }
  const text = scalarText(v, DURATION_ALLOWED);
  if (/^\d+(\.\d+)?$/.test(text)) return Math.round(Number(text) * 1000);
  const part = /(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)/y;
  let total = 0;
  let pos = 0;
  while (pos < text.length) {
    part.lastIndex = pos;
    const m = part.exec(text);
    if (!m) throw new ValueError(`${q(text)} is not a duration`, DURATION_ALLOWED);
    total += Number(m[1]) * (UNIT_MS[m[2] ?? ''] ?? 0);
    pos = part.lastIndex;
  }
  if (text === '') throw new ValueError(`"" is not a duration`, DURATION_ALLOWED);
  return Math.round(total);
}

const UID_RULE_ALLOWED = 'expected [tcp|udp|*:][ports|*:]uid[-uid], e.g. tcp:53,3000-5000:106-108';

function parseUid(text: string, rule: string): number {
  if (!/^\d+$/.test(text) || Number(text) > MAX_UID) {
    throw new ValueError(`${q(rule)}: ${q(text)} is not a uid`, `expected a uid 0-${MAX_UID} or a range a-b`);
  }
  return Number(text);
}

function parseUidRange(text: string, rule: string): UidRange {
  if (text === '' || text === '*') {
    throw new ValueError(`${q(rule)}: uids are missing`, 'expected a uid or a range a-b; * is not allowed for uids');
  }
  if (text.includes(',')) {
    throw new ValueError(`${q(rule)}: ${q(text)} lists several uids`, 'expected one uid or one range a-b per entry; repeat the flag for more');
  }
  const [fromText = '', toText, extra] = text.split('-');
  if (extra !== undefined) throw new ValueError(`${q(rule)}: ${q(text)} is not a uid range`, 'expected a-b');
  const from = parseUid(fromText, rule);
  const to = toText === undefined ? from : parseUid(toText, rule);
  if (from > to) throw new ValueError(`${q(rule)}: uid range ${q(text)} is reversed`, 'expected a-b with a ≤ b');
  return { from, to };
}

function parseProtocol(text: string, rule: string): UidPortExclusion['protocol'] {
  const t = text.toLowerCase();
  if (t === '' || t === '*') return 'all';
  const names = new Set(t.split(',').map((s) => s.trim()));
  for (const n of names) {
    if (n !== 'tcp' && n !== 'udp') {
      throw new ValueError(`${q(rule)}: unknown protocol ${q(n)}`, 'expected tcp, udp or *');
    }
  }
  if (names.size === 2) return 'all';
  return names.has('tcp') ? 'tcp' : 'udp';
}

/** One `--exclude-outbound-ports-for-uids` rule, kumactl's `<protocol:>?<ports:>?<uids>`. */
export function parseUidExclusion(v: unknown): UidPortExclusion {
  const rule = scalarText(v, UID_RULE_ALLOWED);
  const parts = rule.split(':');
  if (parts.length > 3) throw new ValueError(`${q(rule)} has too many ":"-separated parts`, UID_RULE_ALLOWED);
  const uidsText = (parts[parts.length - 1] ?? '').trim();
  const portsText = parts.length >= 2 ? (parts[parts.length - 2] ?? '').trim() : '*';
  const protoText = parts.length === 3 ? (parts[0] ?? '').trim() : '*';
  const protocol = parseProtocol(protoText, rule);
  let ports: PortRange[] = [];
  if (portsText !== '*' && portsText !== '') {
    try {
      ports = parsePortList(portsText);
    } catch (e) {
      if (e instanceof ValueError) throw new ValueError(`${q(rule)}: ${e.problem}`, e.allowed);
      throw e;
    }
  }
  const uids = [parseUidRange(uidsText, rule)];
  return { protocol, ports, uids };
}

export function parseUidExclusions(v: unknown): UidPortExclusion[] {
  const rules = Array.isArray(v) ? v : [v];
  return rules.filter((r) => !(typeof r === 'string' && r.trim() === '')).map((r) => parseUidExclusion(r));
}

const VNET_ALLOWED = 'expected IFACE:CIDR, e.g. docker0:172.17.0.0/16, br+:172.18.0.0/16';
// iptables -i: up to 15 characters (IFNAMSIZ - 1), a trailing + matches every name with that prefix.
const IFACE_PATTERN = /^[A-Za-z0-9_.@-]{1,15}\+?$|^\+$/;

/** `IFACE:CIDR`; the first ":" splits, so IPv6 CIDRs need no escaping (`br0:fd00::/64`). */
export function parseVnet(v: unknown): VirtualNetwork {
  const text = scalarText(v, VNET_ALLOWED);
  const colon = text.indexOf(':');
  if (colon < 0) throw new ValueError(`${q(text)} has no CIDR`, VNET_ALLOWED);
  const iface = text.slice(0, colon);
  if (!IFACE_PATTERN.test(iface)) {
    throw new ValueError(`${q(text)}: ${q(iface)} is not an interface name`, 'expected up to 15 of A-Z a-z 0-9 _ . @ -, optionally ending in +');
  }
  try {
    return { iface, cidr: parseCidr(text.slice(colon + 1), { requirePrefix: true }) };
  } catch (e) {
    if (e instanceof ValueError) throw new ValueError(`${q(text)}: ${e.problem}`, e.allowed);
    throw e;
  }
}

export function parseVnets(v: unknown): VirtualNetwork[] {
  const items = Array.isArray(v) ? v : [v];
  return items.filter((i) => !(typeof i === 'string' && i.trim() === '')).map((i) => parseVnet(i));
}

export function parseInterfaceName(v: unknown): string {
  const text = scalarText(v, 'expected an interface name');
  if (!/^[A-Za-z0-9_.@-]{1,15}$/.test(text)) {
    throw new ValueError(`${q(text)} is not an interface name`, 'expected up to 15 of A-Z a-z 0-9 _ . @ -');
  }
  return text;
}

export function parsePath(v: unknown, opts: { absolute?: boolean } = {}): string {
  const text = scalarText(v, 'expected a path');
  if (text === '') throw new ValueError('the path is empty', 'expected a path');
  if (opts.absolute && !text.startsWith('/')) {
    throw new ValueError(`${q(text)} is not an absolute path`, 'expected a path starting with /');
  }
  return text;
}

const INSTANCE_IP_ALLOWED = 'expected one IPv4 and/or one IPv6 address, comma-separated, e.g. 10.0.0.5,fd00::5';

/** `--ebpf-instance-ip`: at most one address per family, each a usable unicast address. */
export function parseInstanceIps(v: unknown): { ipv4?: string; ipv6?: string } {
  const items = listItems(v, INSTANCE_IP_ALLOWED, true);
  if (items.length === 0) throw new ValueError('no address given', INSTANCE_IP_ALLOWED);
  const out: { ipv4?: string; ipv6?: string } = {};
  for (const item of items) {
    const addr = canonicalAddress(item);
    if (!addr) throw new ValueError(`${q(item)} is not an IP address`, INSTANCE_IP_ALLOWED);
    if (out[addr.family] !== undefined) {
      throw new ValueError(`${q(item)} is a second ${addr.family === 'ipv4' ? 'IPv4' : 'IPv6'} address`, INSTANCE_IP_ALLOWED);
    }
    const a = addr.address;
    if (a === '0.0.0.0' || a === '::' || a.startsWith('127.') || a === '::1' || a === '255.255.255.255' || /^(22[4-9]|23\d)\./.test(a) || a.startsWith('ff')) {
      throw new ValueError(`${q(item)} is not a usable instance address`, "expected the host's own unicast address, not loopback, unspecified or multicast");
    }
    out[addr.family] = a;
  }
  return out;
}

/** `--kuma-dp-user`: all digits = a uid, otherwise a user name. */
export function parseUserSpec(v: unknown): { uid: number } | { name: string } {
  const text = scalarText(v, 'expected a user name or uid');
  if (text === '') throw new ValueError('the user is empty', 'expected a user name or uid');
  if (/^\d+$/.test(text)) {
    if (Number(text) > MAX_UID) throw new ValueError(`${q(text)} is not a uid`, `expected a uid 0-${MAX_UID}`);
    return { uid: Number(text) };
  }
  if (!/^[A-Za-z0-9_.][A-Za-z0-9_.-]*\$?$/.test(text)) {
    throw new ValueError(`${q(text)} is not a user name`, 'expected a user name or uid');
  }
  return { name: text };
}
