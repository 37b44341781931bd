/**
 * A plain server for the sandbox, in two roles:
 *   --via app     the mesh host's application (run as an ordinary uid, in the cgroup)
 *   --via remote  a server on the client host (TCP, UDP "DNS" with --udp 53, DNS over
 *                 TCP with --dns-tcp 53)
 *
 *   node dist/sandbox/app.js --via app --tcp 9080,9081
 *   node dist/sandbox/app.js --via remote --tcp 8080 --udp 53 --dns-tcp 53 --addresses 10.231.1.1,fd00:231:1::1
 *
 * TCP: greets every connection with {"via":"<via>","local":"ip:port","peer":"ip:port"}
 * and echoes lines until the peer ends. UDP: answers every datagram with
 * {"via":"<via>-dns",...} from the address it was sent to (one socket per address,
 * so replies never leave from another local address), inside a DNS answer when the
 * datagram is a DNS query. DNS over TCP: answers each query with the same greeting.
 */
import { parseArgs } from 'node:util';
import { emit, exitAfter, hostPort, parsePorts, serveDnsTcp, serveTcp, serveUdp } from './wire.js';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      via: { type: 'string', default: 'app' },
      tcp: { type: 'string', default: '' },
      udp: { type: 'string', default: '' },
      'dns-tcp': { type: 'string', default: '' },
      addresses: { type: 'string', default: '0.0.0.0,::' },
      'max-lifetime': { type: 'string', default: '900' },
    },
    strict: true,
  });
  exitAfter(Number(values['max-lifetime']) * 1000);
  const via = values.via ?? 'app';
  const addresses = (values.addresses ?? '').split(',').filter(Boolean);
  const tcpPorts = parsePorts(values.tcp);
  const udpPorts = parsePorts(values.udp);
  const dnsTcpPorts = parsePorts(values['dns-tcp']);
  // TCP listens on the wildcard addresses: the accepted socket's local address says which was dialled.
  for (const port of tcpPorts) {
    for (const host of ['0.0.0.0', '::']) {
      await serveTcp(port, host, (socket) => ({ via, local: hostPort(socket.localAddress, socket.localPort), peer: hostPort(socket.remoteAddress, socket.remotePort) }));
    }
  }
  for (const port of dnsTcpPorts) {
    for (const host of ['0.0.0.0', '::']) {
      await serveDnsTcp(port, host, (socket) => ({ via: `${via}-dns`, local: hostPort(socket.localAddress, socket.localPort), peer: hostPort(socket.remoteAddress, socket.remotePort) }));
    }
  }
  for (const port of udpPorts) {
    for (const host of addresses) {
      await serveUdp(port, host, (from) => ({ via: `${via}-dns`, local: hostPort(host, port), peer: hostPort(from.address, from.port) }));
    }
  }
  emit({ ready: via, pid: process.pid, uid: process.getuid?.(), tcp: tcpPorts, udp: udpPorts, dnsTcp: dnsTcpPorts });
}

main().catch((e: unknown) => {
  process.stderr.write(`app: ${(e as Error).message}\n`);
  process.exit(1);
});
