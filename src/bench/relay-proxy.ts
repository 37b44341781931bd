/**
 * A relaying proxy for the latency benchmark, run as the proxy uid:
 *
 *   node dist/bench/relay-proxy.js --port 15011
 *
 * Every connection accepted (redirected there by an engine) is connected onward to
 * its original destination (SO_ORIGINAL_DST, or the accepted socket's local address
 * after a tc redirect) and bytes are copied both ways — what Envoy's TCP proxy does,
 * minus everything else, so the measured cost is the engine's redirect plus one
 * user-space hop. Exits when stdin closes or after --max-lifetime seconds.
 */
import { connect, createServer, type Socket } from 'node:net';
import { parseArgs } from 'node:util';
import { originalDestination } from '../host/libc.js';
import { emit, exitAfter, hostPort } from '../sandbox/wire.js';

function destination(socket: Socket, listenerPort: number): { address: string; port: number } | undefined {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  try {
    if (typeof fd !== 'number' || fd < 0) throw new Error('no file descriptor');
    return originalDestination(fd, socket.localAddress ?? '');
  } catch {
    if (socket.localPort !== listenerPort && socket.localAddress) return { address: socket.localAddress, port: socket.localPort ?? 0 };
    return undefined;
  }
}

function relay(client: Socket, listenerPort: number): void {
  client.setNoDelay(true);
  const dst = destination(client, listenerPort);
  if (!dst) {
    client.destroy();
    return;
  }
  // One line per relayed connection: the bench counts them to prove the path.
  emit({ relayed: hostPort(dst.address, dst.port) });
  const upstream = connect({ host: dst.address, port: dst.port });
  upstream.setNoDelay(true);
  const close = (): void => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', close);
  upstream.on('error', close);
  client.pipe(upstream);
  upstream.pipe(client);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { port: { type: 'string', default: '15011' }, 'max-lifetime': { type: 'string', default: '900' } },
    strict: true,
  });
  exitAfter(Number(values['max-lifetime']) * 1000);
  const port = Number(values.port);
  for (const host of ['0.0.0.0', '::']) {
    const server = createServer((socket) => relay(socket, port));
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e) => reject(new Error(`listen tcp ${hostPort(host, port)}: ${e.message}`)));
      server.listen({ port, host, ipv6Only: host.includes(':') }, () => resolve());
    });
  }
  emit({ ready: 'relay-proxy', pid: process.pid, uid: process.getuid?.(), port });
}

main().catch((e: unknown) => {
  process.stderr.write(`relay-proxy: ${(e as Error).message}\n`);
  process.exit(1);
});
