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
 * each datagram with {"via":"proxy-dns","peer":...,"local":...}, inside a DNS answer
 * when the datagram is a DNS query. DNS over TCP there gets the same answer: no engine
 * should send TCP there (Kuma's DNS listener is UDP only), and a test that finds one
 * landing there says so.
 */
import type { Socket } from 'node:net';
import { parseArgs } from 'node:util';
import { originalDestination } from '../host/libc.js';
import { emit, exitAfter, hostPort, serveDnsTcp, serveTcp, serveUdp } from './wire.js';

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
    await serveTcp(outbound, host, (socket) => describeConnection(socket, 'outbound', outbound));
    await serveTcp(inbound, host, (socket) => describeConnection(socket, 'inbound', inbound));
  }
  for (const host of ['127.0.0.1', '::1']) {
    await serveUdp(dns, host, (from) => ({ via: 'proxy-dns', peer: hostPort(from.address, from.port), local: hostPort(host, dns) }));
    await serveDnsTcp(dns, host, (socket) => ({ via: 'proxy-dns', peer: hostPort(socket.remoteAddress, socket.remotePort), local: hostPort(host, dns) }));
  }
  emit({ ready: 'proxy', pid: process.pid, uid: process.getuid?.(), outbound, inbound, dns });
}

main().catch((e: unknown) => {
  process.stderr.write(`proxy: ${(e as Error).message}\n`);
  process.exit(1);
});
