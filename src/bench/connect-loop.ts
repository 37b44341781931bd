/**
 * One benchmark client: opens up to `--count` TCP connections one after another to
 * host:port (stopping early after `--seconds`, so a slow path costs a bounded time),
 * waits for the server's greeting line on each, closes it, and prints
 * one JSON line with the latency distribution. Run inside the sandbox as the app uid
 * (so the engine under test redirects it). Bounded by --timeout per connection.
 */
import { connect } from 'node:net';
import { parseArgs } from 'node:util';
import { percentile } from './stats.js';

interface Summary {
  count: number;
  failed: number;
  via: string | null;
  totalMs: number;
  connPerSec: number;
  p50Us: number;
  p99Us: number;
}

function once(host: string, port: number, timeoutMs: number): Promise<{ us: number; via: string | null }> {
  return new Promise((resolve, reject) => {
    const start = process.hrtime.bigint();
    const socket = connect({ host, port });
    let buf = '';
    socket.setTimeout(timeoutMs, () => socket.destroy(new Error('timed out')));
    socket.on('data', (d) => {
      buf += d.toString();
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      const us = Number(process.hrtime.bigint() - start) / 1000;
      let via: string | null = null;
      try {
        via = (JSON.parse(buf.slice(0, nl)) as { via?: string }).via ?? null;
      } catch {
        via = null;
      }
      // Close with a reset: a FIN would leave the client end in TIME_WAIT, and tens of
      // thousands of those toward one ip:port make every later connect() search for a
      // free port — the rate would measure that search, not the path (direct and
      // iptables keep the original 4-tuple, eBPF's differs).
      socket.resetAndDestroy();
      resolve({ us, via });
    });
    socket.on('error', reject);
  });
}


async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      host: { type: 'string' },
      port: { type: 'string' },
      count: { type: 'string', default: '1000' },
      timeout: { type: 'string', default: '3000' },
      seconds: { type: 'string', default: '0' },
      warmup: { type: 'string', default: '0' },
    },
    strict: true,
  });
  const host = values.host ?? '127.0.0.1';
  const port = Number(values.port);
  const count = Math.min(Math.max(Number(values.count), 1), 100_000);
  const lat: number[] = [];
  let failed = 0;
  let via: string | null = null;
  // Warm-up connections (JIT, caches, the first packets through a fresh install) are not counted.
  const warmUntil = process.hrtime.bigint() + BigInt(Math.round(Number(values.warmup) * 1e9));
  while (process.hrtime.bigint() < warmUntil) await once(host, port, Number(values.timeout)).catch(() => undefined);
  const t0 = process.hrtime.bigint();
  const stopAt = Number(values.seconds) > 0 ? t0 + BigInt(Math.round(Number(values.seconds) * 1e9)) : undefined;
  for (let i = 0; i < count; i++) {
    if (stopAt !== undefined && process.hrtime.bigint() >= stopAt) break;
    try {
      const r = await once(host, port, Number(values.timeout));
      lat.push(r.us);
      via ??= r.via;
    } catch {
      failed++;
      if (failed > 10) break;
    }
  }
  const totalMs = Number(process.hrtime.bigint() - t0) / 1e6;
  lat.sort((a, b) => a - b);
  const summary: Summary = {
    count: lat.length,
    failed,
    via,
    totalMs: Math.round(totalMs),
    connPerSec: Math.round((lat.length / totalMs) * 1000),
    p50Us: Math.round(percentile(lat, 50)),
    p99Us: Math.round(percentile(lat, 99)),
  };
  process.stdout.write(`${JSON.stringify(summary)}\n`);
}

main().catch((e: unknown) => {
  process.stdout.write(`${JSON.stringify({ error: (e as Error).message })}\n`);
  process.exit(1);
});
