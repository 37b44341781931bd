/**
 * Finding the proxy's inbound listener in /proc/net/tcp{,6} text (no root). The
 * registration itself (pidfd_getfd into the SOCKMAP) runs in every end-to-end install:
 * the test proxy listens before tpctl is installed.
 */
import { describe, expect, it } from 'vitest';
import { parseProcNetTcp } from '../../src/ebpf/listeners.js';

const TCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:3A9E 00000000:0000 0A 00000000:00000000 00:00000000 00000000  5678        0 41234 1 0000000000000000 100 0 0 10 0
   1: 0100007F:3AAD 00000000:0000 0A 00000000:00000000 00:00000000 00000000  5678        0 41235 1 0000000000000000 100 0 0 10 0
   2: 0200E70A:2378 0100E70A:A1B2 01 00000000:00000000 00:00000000 00000000  1234        0 41299 1 0000000000000000 20 4 30 10 -1
   3: 00000000:2378 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1234        0 0 1 0000000000000000 100 0 0 10 0
`;

describe('parseProcNetTcp', () => {
  it('keeps LISTEN sockets on the wildcard address with their port (hex), uid and inode', () => {
    // 127.0.0.1:15021 is left out: sk_lookup gives the listener every local address.
    expect(parseProcNetTcp(TCP, 'ipv4')).toEqual([{ family: 'ipv4', port: 15006, uid: 5678, inode: 41234 }]);
  });

  it('reads the IPv6 table the same way', () => {
    const v6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:3A9E 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  5678        0 51234 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000001000000:3A9E 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1234        0 51235 1 0000000000000000 100 0 0 10 0
`;
    expect(parseProcNetTcp(v6, 'ipv6')).toEqual([{ family: 'ipv6', port: 15006, uid: 5678, inode: 51234 }]);
  });

  it('ignores an empty or truncated table', () => {
    expect(parseProcNetTcp('', 'ipv4')).toEqual([]);
    expect(parseProcNetTcp('header\n   0: 00000000:3A9E', 'ipv4')).toEqual([]);
  });
});
