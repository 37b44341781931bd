/**
 * `make bench`: what redirecting through each engine costs, measured side by side in
 * one run, in a sandbox (never the root netns or cgroup).
 *
 * The app (ordinary uid, in the sandbox cgroup) opens connections to remote:8080 one
 * after another and waits for the greeting line:
 *   direct     no engine installed: the remote server on the client host answers
 *   iptables   nat REDIRECT to the test proxy on 15001 (nft backend)
 *   nftables   the nftables engine's redirect to the same proxy
 *   nft-15k    the same with 15,000 excluded outbound ports (one interval set): the
 *              exclusions must not slow the redirected connections down. Besides its
 *              place in the rounds, it is measured in pairs against nftables with no
 *              exclusions, each pair back to back (the table replaced in place between
 *              the two), and the median of the pairs' ratios is reported: drift on a
 *              busy machine then cancels out within each pair.
 *   ebpf       cgroup/connect4 rewrite to the test proxy on 127.0.0.1:15001
 * The proxy answers like the remote server does (one JSON line; it also recovers
 * SO_ORIGINAL_DST), so the ratios say what transparent proxying costs an app's
 * connection setup, and how the two engines compare.
 * Rounds rotate the order of the three so drift on the machine affects each alike; the report
 * gives the median connections/s per path and the ratios between them.
 *
 * Env: BENCH_CONNECTIONS (per path per round, default 2000), BENCH_ROUNDS (default 3),
 * BENCH_PAIRS (nftables none/15k pairs, default 30), BENCH_PAIR_CONNECTIONS (per side of a pair, default 300).
 */
import { join } from 'node:path';
import {
  APP_UID,
  CLIENT_HOSTS,
  EXTRA_CLIENT_HOSTS,
  PORTS,
  REMOTE_PORTS,
  conformanceFlags,
  describeCli,
  distDir,
  engineFlags,
  runCli,
  startCast,
  uninstallFlags,
  type EngineName,
} from '../sandbox/harness.js';
import { createSandbox, describeSweep, spawnIn, sweepStaleSandboxes, type Sandbox } from '../sandbox/sandbox.js';

interface LoopResult {
  count: number;
  failed: number;
  via: string | null;
  connPerSec: number;
  p50Us: number;
  p99Us: number;
  error?: string;
}

type PathName = 'direct' | 'iptables' | 'nftables' | 'nft-15k' | 'ebpf';
const order: PathName[] = ['direct', 'iptables', 'nftables', 'nft-15k', 'ebpf'];

/** 15,000 single excluded ports (every other port from 20000, so none merge into a range), none of them 8080. */
const MANY_EXCLUDED_PORTS = Array.from({ length: 15_000 }, (_, i) => 20_000 + 2 * i);

async function loop(sb: Sandbox, host: string, port: number, count: number): Promise<LoopResult> {
  const p = spawnIn(sb, 'mesh', {
    uid: APP_UID,
    inCgroup: true,
    argv: [process.execPath, join(distDir, 'bench', 'connect-loop.js'), '--host', host, '--port', String(port), '--count', String(count)],
  });
  p.closeStdin();
  await p.waitForExit(count * 50 + 30_000);
  const last = p.lines.filter(Boolean).at(-1) ?? '{}';
  const r = JSON.parse(last) as LoopResult;
  if (r.error) throw new Error(`bench client: ${r.error}`);
  if (r.failed > 0) throw new Error(`bench client: ${r.failed} connections failed`);
  return r;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
};

async function withEngine<T>(sb: Sandbox, engine: EngineName, fn: () => Promise<T>, extraExcludedOutboundPorts: number[] = []): Promise<T> {
  const flags = conformanceFlags(sb, { extraExcludedOutboundPorts });
  const install = await runCli(sb, ['install', 'transparent-proxy', ...flags, ...engineFlags(engine, sb)]);
  if (install.exitCode !== 0) throw new Error(`install (${engine}) failed: ${describeCli(install)}`);
  try {
    return await fn();
  } finally {
    const un = await runCli(sb, ['uninstall', 'transparent-proxy', ...uninstallFlags(engine, sb)]);
    if (un.exitCode !== 0) process.stderr.write(`uninstall (${engine}) failed: ${describeCli(un)}\n`);
  }
}

/** Alternating installs of the nftables engine with no / 15,000 excluded ports; per pair conn/s of each. */
async function exclusionPairs(sb: Sandbox, remote: string, count: number, pairs: number): Promise<Array<{ none: LoopResult; many: LoopResult }>> {
  const out: Array<{ none: LoopResult; many: LoopResult }> = [];
  const measure = async (ports: number[]): Promise<LoopResult> => {
    const flags = [...conformanceFlags(sb, { extraExcludedOutboundPorts: ports }), ...engineFlags('nftables', sb)];
    const r = await runCli(sb, ['install', 'transparent-proxy', ...flags]);
    if (r.exitCode !== 0) throw new Error(`install (nftables) failed: ${describeCli(r)}`);
    const res = await loop(sb, remote, REMOTE_PORTS.plain, count);
    if (res.via !== 'proxy') throw new Error(`nftables pairs: answered by ${res.via}, expected proxy`);
    return res;
  };
  try {
    for (let i = 0; i < pairs; i++) {
      // Alternate which one goes first, so neither always follows the other's install.
      if (i % 2 === 0) out.push({ none: await measure([]), many: await measure(MANY_EXCLUDED_PORTS) });
      else out.push({ many: await measure(MANY_EXCLUDED_PORTS), none: await measure([]) });
    }
  } finally {
    await runCli(sb, ['uninstall', 'transparent-proxy', ...uninstallFlags('nftables', sb)]);
  }
  return out;
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) {
    process.stderr.write('error: make bench needs root: it builds a network-namespace sandbox (run: sudo make bench)\n');
    process.exit(1);
  }
  const count = Math.min(Math.max(Number(process.env.BENCH_CONNECTIONS ?? 2000), 100), 50_000);
  const rounds = Math.min(Math.max(Number(process.env.BENCH_ROUNDS ?? 3), 1), 10);
  for (const line of describeSweep(await sweepStaleSandboxes())) process.stderr.write(`bench: ${line}\n`);
  const sb = await createSandbox({ name: `tpbench-${process.pid}`, extraClientHosts: EXTRA_CLIENT_HOSTS });
  const results: Record<PathName, LoopResult[]> = { direct: [], iptables: [], nftables: [], 'nft-15k': [], ebpf: [] };
  // Many short pairs: a stall from other work on the machine spoils a few pairs, not the median.
  const pairCount = Math.min(Math.max(Number(process.env.BENCH_PAIRS ?? 30), 1), 100);
  const pairConnections = Math.min(Math.max(Number(process.env.BENCH_PAIR_CONNECTIONS ?? 300), 100), 10_000);
  let pairs: Array<{ none: LoopResult; many: LoopResult }> = [];
  try {
    await startCast(sb);
    const remote = sb.v4(CLIENT_HOSTS.remote);
    const run: Record<PathName, () => Promise<LoopResult>> = {
      direct: () => loop(sb, remote, REMOTE_PORTS.plain, count),
      iptables: () => withEngine(sb, 'iptables-nft', () => loop(sb, remote, REMOTE_PORTS.plain, count)),
      nftables: () => withEngine(sb, 'nftables', () => loop(sb, remote, REMOTE_PORTS.plain, count)),
      'nft-15k': () => withEngine(sb, 'nftables', () => loop(sb, remote, REMOTE_PORTS.plain, count), MANY_EXCLUDED_PORTS),
      ebpf: () => withEngine(sb, 'ebpf', () => loop(sb, remote, REMOTE_PORTS.plain, count)),
    };
    // Warm both servers (JIT, socket buffers) before anything is measured.
    await loop(sb, '127.0.0.1', PORTS.outbound, Math.min(count, 500));
    await loop(sb, remote, REMOTE_PORTS.plain, Math.min(count, 500));
    for (let r = 0; r < rounds; r++) {
      // Rotate the order each round so no path always runs first or last.
      const rotated = [...order.slice(r % order.length), ...order.slice(0, r % order.length)];
      for (const name of rotated) results[name].push(await run[name]());
      process.stdout.write(`round ${r + 1}/${rounds} done (${rotated.join(', ')})\n`);
    }
    pairs = await exclusionPairs(sb, remote, pairConnections, pairCount);
  } finally {
    await sb.destroy();
  }
  const expectedVia: Record<PathName, string> = { direct: 'remote', iptables: 'proxy', nftables: 'proxy', 'nft-15k': 'proxy', ebpf: 'proxy' };
  for (const name of order) {
    const vias = new Set(results[name].map((x) => x.via));
    if (vias.size !== 1 || !vias.has(expectedVia[name])) {
      throw new Error(`${name}: connections were answered by ${[...vias].join(',')}, expected ${expectedVia[name]}`);
    }
  }
  const cps = (n: PathName): number => median(results[n].map((x) => x.connPerSec));
  const p50 = (n: PathName): number => median(results[n].map((x) => x.p50Us));
  const p99 = (n: PathName): number => median(results[n].map((x) => x.p99Us));
  process.stdout.write(`\nsequential TCP connections app → remote:8080, ${count} per path × ${rounds} rounds (medians)\n`);
  process.stdout.write(`${'path'.padEnd(10)}${'conn/s'.padStart(10)}${'p50 µs'.padStart(10)}${'p99 µs'.padStart(10)}\n`);
  for (const n of order) {
    process.stdout.write(`${n.padEnd(10)}${String(cps(n)).padStart(10)}${String(p50(n)).padStart(10)}${String(p99(n)).padStart(10)}\n`);
  }
  const ratio = (a: PathName, b: PathName): string => (cps(a) / cps(b)).toFixed(3);
  process.stdout.write(`\nratios (conn/s): iptables/direct ${ratio('iptables', 'direct')}  ebpf/direct ${ratio('ebpf', 'direct')}  ebpf/iptables ${ratio('ebpf', 'iptables')}\n`);
  process.stdout.write(
    `ratios (conn/s): nftables/direct ${ratio('nftables', 'direct')}  nftables/iptables ${ratio('nftables', 'iptables')}  ` +
      `nft-15k/nftables ${ratio('nft-15k', 'nftables')} (15,000 excluded ports vs none, from the rounds)\n`,
  );
  // conn/s comes from the mean time per connection, which a busy machine's stalls dominate;
  // the p50 latency shows what one connection typically costs.
  const rateRatios = pairs.map((p) => p.many.connPerSec / p.none.connPerSec);
  const p50Ratios = pairs.map((p) => p.none.p50Us / p.many.p50Us);
  const fmt = (xs: number[]): string => xs.map((x) => x.toFixed(2)).join(' ');
  process.stdout.write(
    `\nnftables, 15,000 excluded ports vs none, ${pairs.length} back-to-back pairs of ${pairConnections} connections (goal ≥ 0.90):\n` +
      `  conn/s   none ${median(pairs.map((p) => p.none.connPerSec))}, 15k ${median(pairs.map((p) => p.many.connPerSec))}; ` +
      `median ratio 15k/none ${median(rateRatios).toFixed(3)} (pairs: ${fmt(rateRatios)})\n` +
      `  p50 µs   none ${median(pairs.map((p) => p.none.p50Us))}, 15k ${median(pairs.map((p) => p.many.p50Us))}; ` +
      `median rate ratio by p50 ${median(p50Ratios).toFixed(3)} (pairs: ${fmt(p50Ratios)})\n`,
  );
}

main().catch((e: unknown) => {
  process.stderr.write(`error: ${(e as Error).message}\n`);
  process.exit(1);
});
