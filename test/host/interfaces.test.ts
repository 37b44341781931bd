import { describe, expect, it } from 'vitest';
import { interfaceWithAddress, isUp, parseIpAddrJson } from '../../src/host/interfaces.js';

const JSON_TEXT = JSON.stringify([
  { ifindex: 1, ifname: 'lo', flags: ['LOOPBACK', 'UP', 'LOWER_UP'], operstate: 'UNKNOWN', addr_info: [{ family: 'inet', local: '127.0.0.1', prefixlen: 8 }, { family: 'inet6', local: '::1', prefixlen: 128 }] },
  { ifindex: 7, ifname: 'eth0', flags: ['BROADCAST', 'UP'], operstate: 'UP', addr_info: [{ family: 'inet', local: '10.0.0.5', prefixlen: 24 }, { family: 'inet6', local: 'fd00::5', prefixlen: 64 }] },
  { ifindex: 8, ifname: 'eth1', flags: ['BROADCAST'], operstate: 'DOWN', addr_info: [] },
]);

describe('interfaces', () => {
  const ifaces = parseIpAddrJson(JSON_TEXT);

  it('parses ip -j addr', () => {
    expect(ifaces.map((i) => [i.name, i.ifindex])).toEqual([['lo', 1], ['eth0', 7], ['eth1', 8]]);
    expect(ifaces[1]!.addresses).toEqual([
      { family: 'ipv4', address: '10.0.0.5', prefixLength: 24 },
      { family: 'ipv6', address: 'fd00::5', prefixLength: 64 },
    ]);
  });

  it('knows which are up', () => {
    expect(ifaces.map(isUp)).toEqual([true, true, false]);
  });

  it('finds the interface holding an address', () => {
    expect(interfaceWithAddress(ifaces, '10.0.0.5')?.name).toBe('eth0');
    expect(interfaceWithAddress(ifaces, 'FD00::5')?.name).toBe('eth0');
    expect(interfaceWithAddress(ifaces, '10.0.0.6')).toBeUndefined();
  });
});
