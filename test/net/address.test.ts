import { describe, expect, it } from 'vitest';
import { canonicalAddress, formatCidr, parseCidr } from '../../src/net/address.js';
import { ValueError } from '../../src/value-error.js';

describe('canonicalAddress', () => {
  it.each([
    ['10.0.0.1', '10.0.0.1'],
    ['FD00:0:0:0::1', 'fd00::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:0db8:0000:0001:0001:0001:0001:0001', '2001:db8:0:1:1:1:1:1'],
    ['::', '::'],
    ['::1', '::1'],
    ['1::', '1::'],
    // IPv4-mapped IPv6 stands for the IPv4 address: no packet carries the mapped form.
    ['::ffff:1.2.3.4', '1.2.3.4'],
    ['::FFFF:a00:1', '10.0.0.1'],
    ['::1.2.3.4', '::102:304'],
    ['fe80:0:0:0:1:0:0:0', 'fe80::1:0:0:0'], ['1:0:0:2:0:0:0:3', '1:0:0:2::3'],
  ])('%s → %s', (input, want) => {
    expect(canonicalAddress(input)?.address).toBe(want);
  });

  it.each(['10.0.0.256', '010.0.0.1', 'fe80::1%eth0', '1.2.3', 'x', ''])('rejects %s', (input) => {
    expect(canonicalAddress(input)).toBeUndefined();
  });
});

describe('parseCidr', () => {
  it.each([
    ['10.0.0.1', '10.0.0.1/32'],
    ['10.1.2.3/8', '10.0.0.0/8'],
    ['172.16.5.4/12', '172.16.0.0/12'],
    ['0.0.0.0/0', '0.0.0.0/0'],
    ['fd00::5', 'fd00::5/128'],
    ['fd00:1:2:3::5/48', 'fd00:1:2::/48'],
    ['2001:db8::ff/121', '2001:db8::80/121'],
    ['::ffff:10.0.0.1', '10.0.0.1/32'],
    ['::ffff:10.1.2.3/104', '10.0.0.0/8'],
    ['::ffff:0:0/96', '0.0.0.0/0'],
  ])('%s → %s', (input, want) => {
    expect(formatCidr(parseCidr(input))).toBe(want);
  });

  it('names a bad prefix length and the allowed range per family', () => {
    expect(() => parseCidr('10.0.0.0/33')).toThrow(ValueError);
    try {
      parseCidr('10.0.0.0/33');
    } catch (e) {
      expect((e as ValueError).problem).toBe('"10.0.0.0/33" has an invalid prefix length');
      expect((e as ValueError).allowed).toBe('expected /0 to /32 for IPv4');
    }
    expect(() => parseCidr('fd00::/129')).toThrow(/invalid prefix length/);
    expect(() => parseCidr('fd00::/64', { requirePrefix: true })).not.toThrow();
    expect(() => parseCidr('fd00::', { requirePrefix: true })).toThrow(/has no prefix length/);
  });

  it('refuses an IPv4-mapped CIDR that reaches beyond the mapped block', () => {
    expect(() => parseCidr('::ffff:10.0.0.0/95')).toThrow('"::ffff:10.0.0.0/95" is an IPv4-mapped address with a prefix shorter than /96');
  });
});
