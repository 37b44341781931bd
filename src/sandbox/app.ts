/**
 * A plain server for the sandbox, in two roles:
 *   --via app     the mesh host's application (run as an ordinary uid, in the cgroup)
 *   --via remote  a server on the client host (TCP, and UDP "DNS" with --udp 53)
 *
 *   node dist/sandbox/app.js --via app --tcp 9080,9081
 *   node dist/sandbox/app.js --via remote --tcp 8080 --udp 53 --addresses 10.231.1.1,fd00:231:1::1
 *
 * TCP: greets every connection with {"via":"<via>","local":"ip:port","peer":"ip:port"}
 * and echoes lines until the peer ends. UDP: answers every datagram with
 * {"via":"<via>-dns",...} from the address it was sent to (one socket per address,
 * so replies never leave from another local address).
 */
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';
import { parseArgs } from 'node:util';
import { echoUntilEnd, emit, exitAfter, hostPort, parsePorts } from './wire.js';

function listenTcp(via: string, port: number, host: string): Promise<void> {
  const server = createServer((socket) => {
    socket.on('error', () => socket.destroy());
    const greeting = { via, local: hostPort(socket.localAddress, socket.localPort), peer: hostPort(socket.remoteAddress, socket.remotePort) };
    socket.write(`${JSON.stringify(greeting)}\n`);
    echoUntilEnd(socket);
  });
  return new Promise((resolve, reject) => {
    server.once('error', (e) => reject(new Error(`listen tcp ${hostPort(host, port)}: ${e.message}`)));
    server.listen({ port, host, ipv6Only: host.includes(':') }, () => resolve());
  });
}

function listenUdp(via: string, port: number, host: string): Promise<void> {
  const socket = createSocket(host.includes(':') ? 'udp6' : 'udp4');
  socket.on('message', (_msg, rinfo) => {
    const reply = { via: `${via}-dns`, local: hostPort(host, port), peer: hostPort(rinfo.address, rinfo.port) };
    socket.send(JSON.stringify(reply), rinfo.port, rinfo.address);
  });
  return new Promise((resolve, reject) => {
    socket.once('error', (e) => reject(new Error(`bind udp ${hostPort(host, port)}: ${e.message}`)));
    socket.bind(port, host, () => resolve());
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      via: { type: 'string', default: 'app' },
      tcp: { type: 'string', default: '' },
      udp: { type: 'string', default: '' },
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
  // TCP listens on the wildcard addresses: the accepted socket's local address says which was dialled.
  for (const port of tcpPorts) {
    for (const host of ['0.0.0.0', '::']) await listenTcp(via, port, host);
  }
  for (const port of udpPorts) {
    for (const host of addresses) await listenUdp(via, port, host);
  }
  emit({ ready: via, pid: process.pid, uid: process.getuid?.(), tcp: tcpPorts, udp: udpPorts });
}

main().catch((e: unknown) => {
  process.stderr.write(`app: ${(e as Error).message}\n`);
  process.exit(1);
});
