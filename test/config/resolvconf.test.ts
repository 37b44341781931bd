import { describe, expect, it } from 'vitest';
import { parseResolvConf } from '../../src/config/resolvconf.js';

describe('parseResolvConf', () => {
  it('collects nameservers per family, canonical and de-duplicated', () => {
    const text = [
      '# generated',
      'search example.org',
      'nameserver 10.0.0.53',
      'nameserver   FD00:0::53  # inline comment',
      'nameserver 10.0.0.53',
      'nameserver fe80::1%eth0',
      '; nameserver 10.9.9.9',
      'nameserver not-an-address',
      'options ndots:5',
    ].join('\n');
    expect(parseResolvConf(text)).toEqual({ ipv4: ['10.0.0.53'], ipv6: ['fd00::53', 'fe80::1'] });
  });

  it('no nameserver lines → empty lists', () => {
    expect(parseResolvConf('')).toEqual({ ipv4: [], ipv6: [] });
  });
});
