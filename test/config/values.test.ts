import { describe, expect, it } from 'vitest';
import { ValueError } from '../../src/value-error.js';
import * as v from '../../src/config/values.js';

function problem(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof ValueError) return e.allowed ? `${e.problem} (${e.allowed})` : e.problem;
    throw e;
  }
  throw new Error('expected a ValueError');
}

/** One test per [input, message] pair: `parse` rejects the input with exactly that message. */
function rejects(parse: (v: unknown) => unknown, cases: Array<[string, string]>): void {
  it.each(cases)('rejects %s', (input, msg) => {
    expect(problem(() => parse(input))).toBe(msg);
  });
}

describe('ports', () => {
  it('parses 1-65535 from strings and numbers', () => {
    expect(v.parsePort('1')).toBe(1);
    expect(v.parsePort(65535)).toBe(65535);
    expect(v.parsePort(' 15006 ')).toBe(15006);
  });
  rejects(v.parsePort, [
    ['0', '"0" is out of range (expected an integer 1-65535)'],
    ['65536', '"65536" is out of range (expected an integer 1-65535)'],
    ['http', '"http" is not a port (expected an integer 1-65535)'],
    ['1.5', '"1.5" is not a port (expected an integer 1-65535)'],
    ['-1', '"-1" is not a port (expected an integer 1-65535)'],
  ]);
  it('rejects a boolean or a list from a file', () => {
    expect(problem(() => v.parsePort(true))).toBe('boolean "true" is not allowed here (expected an integer 1-65535)');
    expect(problem(() => v.parsePort([1]))).toBe('a list is not allowed here (expected an integer 1-65535)');
  });
});

describe('port lists', () => {
  it('parses single ports and ranges, lists and comma strings alike', () => {
    expect(v.parsePortList('22, 80,8000-8100')).toEqual([
      { from: 22, to: 22 },
      { from: 80, to: 80 },
      { from: 8000, to: 8100 },
    ]);
    expect(v.parsePortList([22, '80-81'])).toEqual([
      { from: 22, to: 22 },
      { from: 80, to: 81 },
    ]);
    expect(v.parsePortList(443)).toEqual([{ from: 443, to: 443 }]);
    expect(v.parsePortList('5-5')).toEqual([{ from: 5, to: 5 }]);
  });
  it('an empty value is an empty list', () => {
    expect(v.parsePortList('')).toEqual([]);
    expect(v.parsePortList([])).toEqual([]);
  });
  rejects(v.parsePortList, [
    ['80,abc', '"abc" is not a port or range (expected comma-separated ports or ranges a-b, each 1-65535)'],
    ['90-80', 'range "90-80" is reversed (expected a-b with a ≤ b)'],
    ['1-70000', '"70000" in "1-70000" is out of range (expected an integer 1-65535)'],
    ['1-2-3', '"1-2-3" is not a port or range (expected comma-separated ports or ranges a-b, each 1-65535)'],
    ['0', '"0" is out of range (expected an integer 1-65535)'],
    ['-5', '"-5" is not a port or range (expected comma-separated ports or ranges a-b, each 1-65535)'],
    ['80,,443', '"80,,443" has an empty item between commas (expected comma-separated ports or ranges a-b, each 1-65535)'],
    ['80,', '"80," has an empty item between commas (expected comma-separated ports or ranges a-b, each 1-65535)'],
    [',', '"," has an empty item between commas (expected comma-separated ports or ranges a-b, each 1-65535)'],
    ['x'.repeat(5000), `"${'x'.repeat(40)}"… (5000 characters) is not a port or range (expected comma-separated ports or ranges a-b, each 1-65535)`],
  ]);
});

describe('CIDR lists', () => {
  it('canonicalises v4 and v6, with and without prefix', () => {
    expect(v.parseCidrList('10.0.0.1, 192.168.1.7/24,FD00::1/8')).toEqual([
      { family: 'ipv4', address: '10.0.0.1', prefixLength: 32 },
      { family: 'ipv4', address: '192.168.1.0', prefixLength: 24 },
      { family: 'ipv6', address: 'fd00::', prefixLength: 8 },
    ]);
    expect(v.parseCidrList(['10.0.0.0/8', 'fe80::1,::1'])).toHaveLength(3);
  });
  it('names the malformed entry', () => {
    expect(problem(() => v.parseCidrList('10.0.0.1,10.0.0.300'))).toBe(
      '"10.0.0.300" is not an IP address or CIDR (expected an IPv4 or IPv6 address or CIDR, e.g. 10.0.0.1, 172.16.0.0/16, fd00::/8)',
    );
    expect(problem(() => v.parseCidrList('10.0.0.0/x'))).toBe('"10.0.0.0/x" has an invalid prefix length (expected /0 to /32 for IPv4)');
  });
});

describe('--exclude-outbound-ports-for-uids grammar', () => {
  it.each([
    ['1000', { protocol: 'all', ports: [], uids: [{ from: 1000, to: 1000 }] }],
    ['80:1002', { protocol: 'all', ports: [{ from: 80, to: 80 }], uids: [{ from: 1002, to: 1002 }] }],
    ['udp:53:1001', { protocol: 'udp', ports: [{ from: 53, to: 53 }], uids: [{ from: 1001, to: 1001 }] }],
    ['tcp:22:1000-2000', { protocol: 'tcp', ports: [{ from: 22, to: 22 }], uids: [{ from: 1000, to: 2000 }] }],
    [
      '53,3000-5000:106-108',
      { protocol: 'all', ports: [{ from: 53, to: 53 }, { from: 3000, to: 5000 }], uids: [{ from: 106, to: 108 }] },
    ],
    ['*:*:0', { protocol: 'all', ports: [], uids: [{ from: 0, to: 0 }] }],
    ['TCP:*:5', { protocol: 'tcp', ports: [], uids: [{ from: 5, to: 5 }] }],
    ['tcp,udp:80:5', { protocol: 'all', ports: [{ from: 80, to: 80 }], uids: [{ from: 5, to: 5 }] }],
    ['::7', { protocol: 'all', ports: [], uids: [{ from: 7, to: 7 }] }],
  ])('%s', (input, want) => {
    expect(v.parseUidExclusion(input)).toEqual(want);
  });
  rejects(v.parseUidExclusion, [
    ['sctp:53:100', '"sctp:53:100": unknown protocol "sctp" (expected tcp, udp or *)'],
    ['tcp:53:100:1', '"tcp:53:100:1" has too many ":"-separated parts (expected [tcp|udp|*:][ports|*:]uid[-uid], e.g. tcp:53,3000-5000:106-108)'],
    ['tcp:53:*', '"tcp:53:*": uids are missing (expected a uid or a range a-b; * is not allowed for uids)'],
    ['53:1,2', '"53:1,2": "1,2" lists several uids (expected one uid or one range a-b per entry; repeat the flag for more)'],
    ['53:bob', '"53:bob": "bob" is not a uid (expected a uid 0-4294967294 or a range a-b)'],
    ['53:9-1', '"53:9-1": uid range "9-1" is reversed (expected a-b with a ≤ b)'],
    ['99999:5', '"99999:5": "99999" is out of range (expected an integer 1-65535)'],
    ['53:4294967295', '"53:4294967295": "4294967295" is not a uid (expected a uid 0-4294967294 or a range a-b)'],
  ]);
});

describe('--vnet', () => {
  it('splits at the first colon so IPv6 CIDRs work', () => {
    expect(v.parseVnet('docker0:172.17.0.1/16')).toEqual({ iface: 'docker0', cidr: { family: 'ipv4', address: '172.17.0.0', prefixLength: 16 } });
    expect(v.parseVnet('br+:fd00::1/64')).toEqual({ iface: 'br+', cidr: { family: 'ipv6', address: 'fd00::', prefixLength: 64 } });
  });
  rejects(v.parseVnet, [
    ['docker0', '"docker0" has no CIDR (expected IFACE:CIDR, e.g. docker0:172.17.0.0/16, br+:172.18.0.0/16)'],
    ['docker0:172.17.0.1', '"docker0:172.17.0.1": "172.17.0.1" has no prefix length (expected a CIDR such as 172.17.0.0/16)'],
    ['bad iface:10.0.0.0/8', '"bad iface:10.0.0.0/8": "bad iface" is not an interface name (expected up to 15 of A-Z a-z 0-9 _ . @ -, optionally ending in +)'],
    ['averyveryverylongname:10.0.0.0/8', '"averyveryverylongname:10.0.0.0/8": "averyveryverylongname" is not an interface name (expected up to 15 of A-Z a-z 0-9 _ . @ -, optionally ending in +)'],
  ]);
});

describe('durations', () => {
  it.each([
    ['2s', 2000],
    ['500ms', 500],
    ['1m30s', 90_000],
    ['1.5s', 1500],
    ['3', 3000],
    [0.25, 250],
    ['0', 0],
  ])('%s → %d ms', (input, ms) => {
    expect(v.parseDurationMs(input)).toBe(ms);
  });
  it.each(['2x', 's', '-1s', ''])('rejects %s', (input) => {
    expect(problem(() => v.parseDurationMs(input))).toBe(
      `${JSON.stringify(input)} is not a duration (expected a duration such as 2s, 500ms, 1m30s, or a number of seconds)`,
    );
  });
});

describe('booleans, enums, numbers', () => {
  it('booleans accept flag spellings', () => {
    for (const t of [true, 'true', 'TRUE', '1', 't']) expect(v.parseBool(t)).toBe(true);
    for (const f of [false, 'false', 'False', '0', 'f']) expect(v.parseBool(f)).toBe(false);
    expect(problem(() => v.parseBool('yes please'))).toBe('"yes please" is not a boolean (expected true or false)');
  });
  it('ip family mode', () => {
    expect(v.parseIpFamilyMode('DualStack')).toBe('dualstack');
    expect(problem(() => v.parseIpFamilyMode('ipv6'))).toBe('"ipv6" is not allowed (expected dualstack or ipv4)');
  });
  it('whole numbers', () => {
    expect(v.parseUint('0')).toBe(0);
    expect(problem(() => v.parseUint('-1'))).toBe('"-1" is not a whole number (expected a whole number ≥ 0)');
  });
});

describe('instance IPs', () => {
  it('takes one address per family', () => {
    expect(v.parseInstanceIps('10.0.0.5')).toEqual({ ipv4: '10.0.0.5' });
    expect(v.parseInstanceIps('10.0.0.5,FD00::0005')).toEqual({ ipv4: '10.0.0.5', ipv6: 'fd00::5' });
    expect(v.parseInstanceIps(['fd00::5'])).toEqual({ ipv6: 'fd00::5' });
  });
  rejects(v.parseInstanceIps, [
    ['10.0.0.5,10.0.0.6', '"10.0.0.6" is a second IPv4 address (expected one IPv4 and/or one IPv6 address, comma-separated, e.g. 10.0.0.5,fd00::5)'],
    ['10.0.0.0/8', '"10.0.0.0/8" is not an IP address (expected one IPv4 and/or one IPv6 address, comma-separated, e.g. 10.0.0.5,fd00::5)'],
    ['127.0.0.1', '"127.0.0.1" is not a usable instance address (expected the host\'s own unicast address, not loopback, unspecified or multicast)'],
    ['', 'no address given (expected one IPv4 and/or one IPv6 address, comma-separated, e.g. 10.0.0.5,fd00::5)'],
  ]);
});

describe('user spec', () => {
  it('digits are a uid, anything else a name', () => {
    expect(v.parseUserSpec('5678')).toEqual({ uid: 5678 });
    expect(v.parseUserSpec(0)).toEqual({ uid: 0 });
    expect(v.parseUserSpec('kuma-dp')).toEqual({ name: 'kuma-dp' });
    expect(problem(() => v.parseUserSpec('a b'))).toBe('"a b" is not a user name (expected a user name or uid)');
  });
});
