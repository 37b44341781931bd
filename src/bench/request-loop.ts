/**
 * The latency client of `make bench`: one keep-alive TCP connection to host:port;
 * after the server's greeting line it sends `--requests` small requests one at a
 * time, each answered by the echo server (directly, or through the relaying proxy),
 * and prints one JSON line: round-trip p50/p99 in µs and requests/s.
 * Bounded by --timeout per request.
 */
import { connect, type Socket } from 'node:net';
import { parseArgs } from 'node:util';
import { percentile } from './stats.js';

const REQUEST = 'GET /ping\n';

/** Resolves with everything up to and including the next newline the socket delivers. */
function nextLine(socket: Socket, pending: { buf: string }, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const take = (): boolean => {
      const nl = pending.buf.indexOf('\n');
      if (nl < 0) return false;
      const line = pending.buf.slice(0, nl);
      pending.buf = pending.buf.slice(nl + 1);
      cleanup();
      resolve(line);
      return true;
    };
    const onData = (d: Buffer): void => {
      pending.buf += d.toString();
      take();
    };
    const onEnd = (): void => {
      cleanup();
      reject(new Error('connection closed'));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error('timed out'));
    }, timeoutMs);
    const cleanup = (): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('error', onEnd);
    };
    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.on('error', onEnd);
    take();
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      host: { type: 'string' },
      port: { type: 'string' },
      requests: { type: 'string', default: '2000' },
      timeout: { type: 'string', default: '3000' },
    },
    strict: true,
  });
  const requests = Math.min(Math.max(Number(values.requests), 1), 1_000_000);
  const timeoutMs = Number(values.timeout);
  const socket = connect({ host: values.host ?? '127.0.0.1', port: Number(values.port) });
  socket.setNoDelay(true);
  const pending = { buf: '' };
  const greeting = JSON.parse(await nextLine(socket, pending, timeoutMs)) as { via?: string };
  const lat: number[] = [];
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < requests; i++) {
    const start = process.hrtime.bigint();
    socket.write(REQUEST);
    const reply = await nextLine(socket, pending, timeoutMs);
    if (`${reply}\n` !== REQUEST) throw new Error(`unexpected reply ${JSON.stringify(reply)}`);
    lat.push(Number(process.hrtime.bigint() - start) / 1000);
  }
  const totalMs = Number(process.hrtime.bigint() - t0) / 1e6;
  socket.end();
  socket.destroy();
  lat.sort((a, b) => a - b);
  process.stdout.write(
    `${JSON.stringify({
      requests: lat.length,
      via: greeting.via ?? null,
      reqPerSec: Math.round((lat.length / totalMs) * 1000),
      p50Us: Math.round(percentile(lat, 50)),
      p99Us: Math.round(percentile(lat, 99)),
    })}\n`,
  );
}

main().catch((e: unknown) => {
  process.stdout.write(`${JSON.stringify({ error: (e as Error).message })}\n`);
  process.exit(1);
});
