/**
 * The small test proxy: stands in for Envoy in the sandbox. Run as the proxy uid:
 *
 *   node dist/sandbox/proxy.js --outbound 15001 --inbound 15006 --dns 15053
 *
 * For every TCP connection accepted on the outbound or inbound listener it writes
 * one JSON line saying what it could recover, then echoes lines until the peer ends:
 *   {"via":"proxy","listener":"outbound","origDst":"ip:port","origDstFrom":"getsockopt",
 *    "peer":"ip:port","local":"ip:port"}
 * origDst comes from getsockopt(SO_ORIGINAL_DST); when that fails and the socket's
 * local port is not the listener's own, the local address is the original
 * destination (a tc/sk_assign redirect keeps it) and origDstFrom is "local".
 *
 * UDP on 127.0.0.1:<dns> and [::1]:<dns> (where redirected DNS arrives) answers
 * each datagram with {"via":"proxy-dns","peer":...,"local":...} — not real DNS.
 */
import { createSocket } from 'node:dgram';
import { createServer, type Server, type Socket } from 'node:net';
import { parseArgs } from 'node:util';
import { originalDestination } from '../host/libc.js';
import { echoUntilEnd, emit, exitAfter, hostPort } from './wire.js';

type ListenerName = 'outbound' | 'inbound';

function describeConnection(socket: Socket, listener: ListenerName, listenerPort: number): Record<string, unknown> {
  const local = { address: socket.localAddress ?? '', port: socket.localPort ?? 0 };
  const report: Record<string, unknown> = {
    via: 'proxy',
    listener,
    peer: hostPort(socket.remoteAddress, socket.remotePort),
    local: hostPort(local.address, local.port),
  };
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  try {
    if (typeof fd !== 'number' || fd < 0) throw new Error('no file descriptor');
    const orig = originalDestination(fd, local.address);
    report.origDst = hostPort(orig.address, orig.port);
    report.origDstFrom = 'getsockopt';
  } catch (e) {
    report.getsockoptError = (e as Error).message;
    if (local.port !== listenerPort) {
      report.origDst = report.local;
      report.origDstFrom = 'local';
    } else {
      report.origDst = null;
    }
  }
  return report;
}

function listenTcp(port: number, listener: ListenerName, host: string): Promise<Server> {
  const server = createServer((socket) => {
    socket.on('error', () => socket.destroy());
    socket.write(`${JSON.stringify(describeConnection(socket, listener, port))}\n`);
    echoUntilEnd(socket);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host, ipv6Only: host.includes(':') }, () => resolve(server));
  });
}

function listenDns(port: number, host: string): Promise<void> {
  const socket = createSocket(host.includes(':') ? 'udp6' : 'udp4');
  socket.on('message', (_msg, rinfo) => {
    const reply = { via: 'proxy-dns', peer: hostPort(rinfo.address, rinfo.port), local: hostPort(host, port) };
    socket.send(JSON.stringify(reply), rinfo.port, rinfo.address);
  });
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(port, host, () => resolve());
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      outbound: { type: 'string', default: '15001' },
      inbound: { type: 'string', default: '15006' },
      dns: { type: 'string', default: '15053' },
      'max-lifetime': { type: 'string', default: '900' },
    },
    strict: true,
  });
  exitAfter(Number(values['max-lifetime']) * 1000);
  const outbound = Number(values.outbound);
  const inbound = Number(values.inbound);
  const dns = Number(values.dns);
  for (const host of ['0.0.0.0', '::']) {
    await listenTcp(outbound, 'outbound', host);
    await listenTcp(inbound, 'inbound', host);
  }
  await listenDns(dns, '127.0.0.1');
  await listenDns(dns, '::1');
  emit({ ready: 'proxy', pid: process.pid, uid: process.getuid?.(), outbound, inbound, dns });
}

main().catch((e: unknown) => {
  process.stderr.write(`proxy: ${(e as Error).message}\n`);
  process.exit(1);
});
