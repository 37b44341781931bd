/**
 * `make bench`: what each engine costs, measured side by side in one run, in a
 * sandbox (never the root netns or cgroup). Four parts, each in rotating rounds so
 * drift on a shared machine hits every path alike; reports are medians.
 *
 *  1. start-up     node -e 0 vs tpctl --version, install --dry-run, and a real install
 *                  (and uninstall) per engine with no exclusions; also the unbundled
 *                  dist/cli.js, to show what the bundle buys.
 *  2. exclusions   connection rate (sequential connects of the app to remote:8080,
 *                  as 1 / the median connection time, which bursts of other load move
 *                  far less than connections counted per second,
 *                  answered by the proxy) per engine at 0, 1k, 10k, 30k and 100k
 *                  excluded outbound CIDRs (+ 22,000 excluded ports at the top level),
 *                  as a ratio to the no-redirect limit (the same loop straight to the
 *                  remote server with no engine installed, measured just before and
 *                  just after each engine's sample); install and uninstall time.
 *                  At 0 exclusions each engine also redirects to a bare listener (no
 *                  SO_ORIGINAL_DST lookup), which splits the gap to the limit into the
 *                  engine's part and the test proxy's.
 *  3. latency      keep-alive request/response round trips through a relaying proxy
 *                  (bytes copied to the original destination) vs a direct connection.
 *
 * Engines are a table (ALL_ENGINES): adding one adds it to every part.
 * Every tpctl command runs through a launcher inside the mesh host, in a private
 * mount namespace with its own /run: the command alone is timed, and the host-wide
 * install lock of other tpctl runs on the machine cannot add waits.
 *
 * Env: BENCH_ROUNDS (3), BENCH_SECONDS per connection-rate sample (0.3, after 0.1 s of
 * warm-up: thousands of connections, plenty for a median), BENCH_SETTLE_MS pause after
 * each uninstall (200: the kernel frees a big ruleset or map in the background, which
 * would slow the next sample), BENCH_LEVELS (0,1000,10000,30000,100000),
 * BENCH_TOP_PORTS (22000), BENCH_REQUESTS per latency sample (1000), BENCH_STARTUP_RUNS (10),
 * BENCH_ENGINES (all), BENCH_PARTS (startup,rates,latency: the parts to run),
 * BENCH_OUT (docs: bench.json and bench.svg are written there).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  APP_UID,
  CLIENT_HOSTS,
  EXTRA_CLIENT_HOSTS,
  PROXY_UID,
  REMOTE_PORTS,
  distDir,
  engineFlags,
  startCast,
  uninstallFlags,
} from '../sandbox/harness.js';
import { createSandbox } from '../sandbox/sandbox.js';
import { describeSweep, sweepStaleSandboxes } from '../sandbox/leftovers.js';
import { spawnIn } from '../sandbox/processes.js';
import type { Sandbox, SandboxProcess } from '../sandbox/types.js';
import { renderChart } from './chart.js';
import { median } from './stats.js';
import type { BareRow, BenchResults, LevelResult, StartupRow } from './results.js';
import { printReport } from './results.js';

// ---- engines ---------------------------------------------------------------------

interface Engine {
  name: string;
  install(sb: Sandbox): string[];
  uninstall(sb: Sandbox): string[];
}

const ALL_ENGINES: Engine[] = [
  { name: 'iptables', install: (sb) => engineFlags('iptables-nft', sb), uninstall: (sb) => uninstallFlags('iptables-nft', sb) },
  { name: 'nftables', install: (sb) => engineFlags('nftables', sb), uninstall: (sb) => uninstallFlags('nftables', sb) },
  { name: 'ebpf', install: (sb) => engineFlags('ebpf', sb), uninstall: (sb) => uninstallFlags('ebpf', sb) },
  // Another engine is one more entry: every part, table and chart panel takes it.
];

/** BENCH_ENGINES=ebpf,iptables picks some (default: all). */
const ENGINES: Engine[] = (() => {
  const want = process.env.BENCH_ENGINES?.split(',').filter(Boolean);
  if (!want) return ALL_ENGINES;
  const unknown = want.filter((w) => !ALL_ENGINES.some((e) => e.name === w));
  if (unknown.length) throw new Error(`BENCH_ENGINES: unknown ${unknown.join(', ')} (expected ${ALL_ENGINES.map((e) => e.name).join(', ')})`);
  return ALL_ENGINES.filter((e) => want.includes(e.name));
})();

const DIRECT = 'direct';
const OUTBOUND_PORT = 15001;
const RELAY_PORT = 15011;
/**
 * A listener that answers like the remote server, without asking for the original
 * destination: redirected there (no exclusions), a connection costs the engine's
 * redirect alone, not the test proxy's SO_ORIGINAL_DST lookup as well.
 */
const BARE_PORT = 15031;

// ---- settings --------------------------------------------------------------------

/** The parts of the bench, in the order they run (BENCH_PARTS picks some, e.g. while tuning one). */
const PARTS = ['startup', 'rates', 'latency'] as const;
type Part = (typeof PARTS)[number];

function envNumber(name: string, fallback: number, min: number, max: number): number {
  const raw = process.env[name];
  const n = raw === undefined || raw === '' ? fallback : Number(raw);
  if (!Number.isFinite(n) || n < min || n > max) throw new Error(`${name}=${raw}: expected a number ${min}-${max}`);
  return n;
}

const settings = {
  rounds: envNumber('BENCH_ROUNDS', 3, 1, 20),
  seconds: envNumber('BENCH_SECONDS', 0.3, 0.1, 60),
  settleMs: envNumber('BENCH_SETTLE_MS', 200, 0, 60_000),
  levels: (process.env.BENCH_LEVELS ?? '0,1000,10000,30000,100000').split(',').map((x) => {
    const n = Number(x);
    if (!Number.isInteger(n) || n < 0 || n > 1_000_000) throw new Error(`BENCH_LEVELS: ${x} is not a count 0-1000000`);
    return n;
  }),
  topPorts: envNumber('BENCH_TOP_PORTS', 22_000, 0, 22_000),
  requests: envNumber('BENCH_REQUESTS', 1000, 10, 1_000_000),
  startupRuns: envNumber('BENCH_STARTUP_RUNS', 10, 1, 500),
  out: resolve(process.env.BENCH_OUT ?? join(distDir, '..', 'docs')),
  parts: (() => {
    const parts = (process.env.BENCH_PARTS || PARTS.join(',')).split(',');
    const unknown = parts.filter((p) => !(PARTS as readonly string[]).includes(p));
    if (unknown.length) throw new Error(`BENCH_PARTS: unknown ${unknown.join(', ')} (expected some of ${PARTS.join(',')})`);
    return parts as Part[];
  })(),
};

// ---- processes in the sandbox ----------------------------------------------------

const node = process.execPath;
const bundle = join(distDir, 'tpctl.cjs');
const unbundled = join(distDir, 'cli.js');

/** Waits for the line after the first `seen` lines of p (bounded). */
async function lineAfter(p: SandboxProcess, seen: number, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  while (p.lines.length <= seen) {
    if (Date.now() > deadline) throw new Error(`no answer within ${timeoutMs} ms; stderr: ${p.stderr().trim().slice(-300)}`);
    await sleep(5);
  }
  return p.lines[seen]!;
}

interface Timed {
  ms: number;
  code: number | null;
  stdout: string;
  stderr: string;
}

class Launcher {
  private constructor(private readonly p: SandboxProcess) {}

  /** A launcher in the mesh host, in a private mount namespace whose /run is its own tmpfs. */
  static async start(sb: Sandbox): Promise<Launcher> {
    const p = spawnIn(sb, 'mesh', {
      argv: ['unshare', '--mount', '--propagation', 'private', '--', 'sh', '-c', 'mount -t tmpfs tpbench-run /run && exec "$0" "$@"', node, join(distDir, 'bench', 'launcher.js')],
    });
    await p.waitForLine((l) => l.includes('"ready"'), 10_000);
    return new Launcher(p);
  }

  async time(argv: string[]): Promise<Timed> {
    const seen = this.p.lines.length;
    this.p.writeLine(JSON.stringify({ argv }));
    return JSON.parse(await lineAfter(this.p, seen, 330_000)) as Timed;
  }

  /** Times a command that must succeed. */
  async must(what: string, argv: string[]): Promise<number> {
    const r = await this.time(argv);
    if (r.code !== 0) throw new Error(`${what}: exit ${r.code}: ${r.stderr.trim().slice(-600) || r.stdout.trim().slice(-600)}`);
    return r.ms;
  }

  async stop(): Promise<void> {
    this.p.closeStdin();
    await this.p.waitForExit(5_000).catch(() => this.p.stop());
  }
}

async function runClient(sb: Sandbox, script: string, args: string[], timeoutMs: number): Promise<Record<string, unknown>> {
  const p = spawnIn(sb, 'mesh', { uid: APP_UID, inCgroup: true, argv: [node, join(distDir, 'bench', script), ...args] });
  p.closeStdin();
  await p.waitForExit(timeoutMs).catch(async (e: unknown) => {
    await p.stop();
    throw e;
  });
  const r = JSON.parse(p.lines.filter(Boolean).at(-1) ?? '{}') as Record<string, unknown>;
  if (r.error) throw new Error(`${script}: ${String(r.error)}`);
  return r;
}

// ---- the parts -------------------------------------------------------------------

/** tpctl's settings in the bench (no DNS, no exclusions unless a config file adds them). */
function baseFlags(port: number): string[] {
  return ['--kuma-dp-user', String(PROXY_UID), '--redirect-outbound-port', String(port)];
}

function rotate<T>(xs: readonly T[], by: number): T[] {
  const k = by % xs.length;
  return [...xs.slice(k), ...xs.slice(0, k)];
}

function levelLabel(cidrs: number, ports: number): string {
  const k = (n: number): string => (n >= 1000 && n % 1000 === 0 ? `${n / 1000}k` : String(n));
  return ports > 0 ? `${k(cidrs)} + ${k(ports)} ports` : k(cidrs);
}

/** N excluded /32s in 10.64.0.0/10 (never a sandbox address), and `ports` non-adjacent excluded ports from 20000. */
function writeExclusions(sb: Sandbox, cidrs: number, ports: number): string | undefined {
  if (cidrs === 0 && ports === 0) return undefined;
  const ips = Array.from({ length: cidrs }, (_, i) => `10.${64 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}/32`);
  const excludePorts = Array.from({ length: ports }, (_, i) => 20_000 + 2 * i);
  const path = join(sb.tmpDir, `exclusions-${cidrs}-${ports}.json`);
  writeFileSync(path, JSON.stringify({ redirect: { outbound: { excludePortsForIPs: ips, excludePorts } } }));
  return path;
}

async function startup(sb: Sandbox, launcher: Launcher): Promise<StartupRow[]> {
  const dry = ['install', 'transparent-proxy', '--dry-run', ...baseFlags(OUTBOUND_PORT)];
  const commands: Array<{ name: string; argv: string[]; after?: string[] }> = [
    { name: 'node -e 0', argv: [node, '-e', '0'] },
    { name: 'tpctl --version', argv: [node, bundle, '--version'] },
    { name: 'tpctl install --dry-run', argv: [node, bundle, ...dry] },
    { name: 'unbundled --version', argv: [node, unbundled, '--version'] },
    { name: 'unbundled install --dry-run', argv: [node, unbundled, ...dry] },
    ...ENGINES.map((e) => ({
      name: `tpctl install (${e.name})`,
      argv: [node, bundle, 'install', 'transparent-proxy', ...baseFlags(OUTBOUND_PORT), ...e.install(sb)],
      after: [node, bundle, 'uninstall', 'transparent-proxy', ...e.uninstall(sb)],
    })),
  ];
  const samples = new Map<string, number[]>(commands.map((c) => [c.name, []]));
  const uninstallMs = new Map<string, number[]>();
  for (let r = 0; r < settings.startupRuns; r++) {
    for (const c of rotate(commands, r)) {
      samples.get(c.name)!.push(await launcher.must(c.name, c.argv));
      if (c.after) {
        const ms = await launcher.must(`${c.name}: uninstall`, c.after);
        uninstallMs.set(c.name, [...(uninstallMs.get(c.name) ?? []), ms]);
      }
    }
  }
  const base = median(samples.get('node -e 0')!);
  const rows: StartupRow[] = commands.map((c) => ({ name: c.name, ms: median(samples.get(c.name)!), ratio: median(samples.get(c.name)!) / base }));
  for (const [name, ms] of uninstallMs) rows.push({ name: name.replace('install', 'uninstall'), ms: median(ms), ratio: median(ms) / base });
  return rows;
}

async function connectionRates(sb: Sandbox, launcher: Launcher): Promise<{ levels: LevelResult[]; bare: BareRow[] }> {
  const remote = sb.v4(CLIENT_HOSTS.remote);
  const levels = settings.levels.map((cidrs, i) => {
    const ports = i === settings.levels.length - 1 ? settings.topPorts : 0;
    return { cidrs, ports, label: levelLabel(cidrs, ports), config: writeExclusions(sb, cidrs, ports) };
  });
  const paths = [DIRECT, ...ENGINES.map((e) => e.name)];
  type Sample = { cps: number; ratio?: number; installMs?: number; uninstallMs?: number };
  const samples = new Map<string, Sample[]>(); // `${level}/${path}`
  const sample = async (): Promise<{ cps: number; via: string }> => {
    const r = await runClient(sb, 'connect-loop.js', ['--host', remote, '--port', String(REMOTE_PORTS.plain), '--count', '1000000', '--warmup', '0.1', '--seconds', String(settings.seconds)], settings.seconds * 1000 + 30_000);
    if (Number(r.failed) > 0) throw new Error(`connect-loop: ${String(r.failed)} connections failed`);
    // The rate at the median connection time: a few connections stalled by other
    // processes' bursts on a shared machine move the mean (and conn/s) far more than
    // any engine does; the median stays put.
    return { cps: Math.round(1e6 / Math.max(1, Number(r.p50Us))), via: String(r.via) };
  };
  const bare = new Map<string, Array<{ cps: number; ratio: number }>>();
  const bareSample = async (engine: Engine): Promise<number> => {
    await launcher.must(`install ${engine.name} (bare listener)`, [node, bundle, 'install', 'transparent-proxy', ...baseFlags(BARE_PORT), ...engine.install(sb)]);
    let s: { cps: number; via: string };
    try {
      s = await sample();
    } finally {
      await launcher.must(`uninstall ${engine.name}`, [node, bundle, 'uninstall', 'transparent-proxy', ...engine.uninstall(sb)]);
      await sleep(settings.settleMs);
    }
    if (s.via !== 'bare') throw new Error(`${engine.name} (bare listener): answered by ${s.via}, expected the bare listener`);
    return s.cps;
  };
  const measureDirect = async (): Promise<number> => {
    const s = await sample();
    if (s.via !== 'remote') throw new Error(`direct: answered by ${s.via}, expected the remote server`);
    return s.cps;
  };
  for (let round = 0; round < settings.rounds; round++) {
    for (const [li, level] of levels.entries()) {
      // direct, engine, direct, engine, …, direct: each engine's ratio is to the mean of
      // the no-redirect rates measured just before and just after it, so load that comes
      // and goes on a shared machine moves both sides of a ratio alike.
      const directs = [await measureDirect()];
      const got = new Map<string, Sample>();
      for (const engine of rotate(ENGINES, round + li)) {
        const installMs = await launcher.must(`install ${engine.name} (${level.label})`, [
          node, bundle, 'install', 'transparent-proxy', ...baseFlags(OUTBOUND_PORT), ...engine.install(sb), ...(level.config ? ['--config', level.config] : []),
        ]);
        let s: { cps: number; via: string };
        let uninstallMs: number;
        try {
          s = await sample();
        } finally {
          uninstallMs = await launcher.must(`uninstall ${engine.name}`, [node, bundle, 'uninstall', 'transparent-proxy', ...engine.uninstall(sb)]);
          await sleep(settings.settleMs);
        }
        if (s.via !== 'proxy') throw new Error(`${engine.name} (${level.label}): answered by ${s.via}, expected the proxy`);
        directs.push(await measureDirect());
        const around = (directs.at(-2)! + directs.at(-1)!) / 2;
        got.set(engine.name, { cps: s.cps, ratio: s.cps / around, installMs, uninstallMs });
        if (li === 0) {
          // The same engine redirecting to the bare listener, between the same two direct samples' neighbours.
          const b = await bareSample(engine);
          directs.push(await measureDirect());
          const aroundBare = (directs.at(-2)! + directs.at(-1)!) / 2;
          bare.set(engine.name, [...(bare.get(engine.name) ?? []), { cps: b, ratio: b / aroundBare }]);
        }
      }
      got.set(DIRECT, { cps: median(directs), ratio: 1 });
      for (const [path, x] of got) samples.set(`${li}/${path}`, [...(samples.get(`${li}/${path}`) ?? []), x]);
      process.stdout.write(
        `round ${round + 1}/${settings.rounds}, ${level.label} exclusions: direct ${directs.join('/')}/s, ` +
          `${[...got].filter(([p]) => p !== DIRECT).map(([p, x]) => `${p} ${x.cps}/s (${x.ratio!.toFixed(2)})`).join(', ')}` +
          `${li === 0 ? `; to the bare listener: ${[...bare].map(([p, xs]) => `${p} ${xs.at(-1)!.cps}/s (${xs.at(-1)!.ratio.toFixed(2)})`).join(', ')}` : ''}\n`,
      );
    }
  }
  const bareRows: BareRow[] = ENGINES.map((e) => {
    const xs = bare.get(e.name) ?? [];
    return { engine: e.name, connPerSec: median(xs.map((x) => x.cps)), ratio: median(xs.map((x) => x.ratio)) };
  });
  const levelRows = levels.map((level, li) => ({
    label: level.label,
    cidrs: level.cidrs,
    ports: level.ports,
    engines: Object.fromEntries(
      paths.map((path) => {
        const xs = samples.get(`${li}/${path}`) ?? [];
        const pick = (f: (s: Sample) => number | undefined): number | undefined => {
          const v = xs.map(f).filter((x): x is number => x !== undefined);
          return v.length ? median(v) : undefined;
        };
        return [path, { connPerSec: pick((s) => s.cps)!, ratio: pick((s) => s.ratio)!, installMs: pick((s) => s.installMs), uninstallMs: pick((s) => s.uninstallMs) }];
      }),
    ),
  }));
  return { levels: levelRows, bare: bareRows };
}

async function latency(sb: Sandbox, launcher: Launcher, relay: SandboxProcess): Promise<BenchResults['latency']> {
  const remote = sb.v4(CLIENT_HOSTS.remote);
  const paths = [DIRECT, ...ENGINES.map((e) => e.name)];
  const got = new Map<string, Array<{ p50: number; p99: number; rps: number }>>();
  const relayed = (): number => relay.lines.filter((l) => l.includes('"relayed"')).length;
  for (let round = 0; round < settings.rounds; round++) {
    for (const path of rotate(paths, round)) {
      const engine = ENGINES.find((e) => e.name === path);
      if (engine) await launcher.must(`install ${path} (relay)`, [node, bundle, 'install', 'transparent-proxy', ...baseFlags(RELAY_PORT), ...engine.install(sb)]);
      const before = relayed();
      let r: Record<string, unknown>;
      try {
        r = await runClient(sb, 'request-loop.js', ['--host', remote, '--port', String(REMOTE_PORTS.plain), '--requests', String(settings.requests)], 60_000);
      } finally {
        if (engine) await launcher.must(`uninstall ${path}`, [node, bundle, 'uninstall', 'transparent-proxy', ...engine.uninstall(sb)]);
      }
      // The relay prints its line before connecting upstream, so it is there by now.
      const through = relayed() - before;
      if (r.via !== 'remote' || through !== (engine ? 1 : 0)) {
        throw new Error(`latency ${path}: reply from ${String(r.via)} with ${through} relayed connections (expected the remote server, ${engine ? 'through the relay' : 'directly'})`);
      }
      got.set(path, [...(got.get(path) ?? []), { p50: Number(r.p50Us), p99: Number(r.p99Us), rps: Number(r.reqPerSec) }]);
    }
  }
  const directP50 = median(got.get(DIRECT)!.map((x) => x.p50));
  return paths.map((path) => {
    const xs = got.get(path)!;
    const p50 = median(xs.map((x) => x.p50));
    return { path: path === DIRECT ? 'direct' : `${path} + relay`, p50Us: p50, p99Us: median(xs.map((x) => x.p99)), reqPerSec: median(xs.map((x) => x.rps)), p50Ratio: p50 / directP50 };
  });
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) {
    process.stderr.write('error: make bench needs root: it builds a network-namespace sandbox (run: sudo make bench)\n');
    process.exit(1);
  }
  for (const line of describeSweep(await sweepStaleSandboxes())) process.stderr.write(`bench: ${line}\n`);
  const started = new Date();
  const sb = await createSandbox({ name: `tpbench-${process.pid}`, extraClientHosts: EXTRA_CLIENT_HOSTS });
  let launcher: Launcher | undefined;
  let results: BenchResults;
  try {
    await startCast(sb);
    const relay = spawnIn(sb, 'mesh', { uid: PROXY_UID, inCgroup: true, argv: [node, join(distDir, 'bench', 'relay-proxy.js'), '--port', String(RELAY_PORT)] });
    const bareListener = spawnIn(sb, 'mesh', { uid: PROXY_UID, inCgroup: true, argv: [node, join(distDir, 'sandbox', 'app.js'), '--via', 'bare', '--tcp', String(BARE_PORT)] });
    await Promise.all([relay, bareListener].map((p) => p.waitForLine((l) => l.includes('"ready"'), 10_000)));
    launcher = await Launcher.start(sb);
    // Warm the servers (JIT, socket buffers) before anything is measured.
    await runClient(sb, 'connect-loop.js', ['--host', sb.v4(CLIENT_HOSTS.remote), '--port', String(REMOTE_PORTS.plain), '--count', '300'], 30_000);
    const want = (part: Part, what: string): boolean => settings.parts.includes(part) && (process.stdout.write(`${what}…\n`), true);
    const startupRows = want('startup', 'start-up') ? await startup(sb, launcher) : [];
    const rates = want('rates', 'connection rate by exclusions') ? await connectionRates(sb, launcher) : { levels: [], bare: [] };
    const lat = want('latency', 'request/response latency') ? await latency(sb, launcher, relay) : [];
    results = {
      measuredAt: started.toISOString(),
      durationS: Math.round((Date.now() - started.getTime()) / 1000),
      settings: { ...settings, out: undefined, engines: ENGINES.map((e) => e.name) },
      startup: startupRows,
      levels: rates.levels,
      bare: rates.bare,
      latency: lat,
    };
  } finally {
    await launcher?.stop();
    await sb.destroy();
  }
  printReport(results, (s) => process.stdout.write(s));
  mkdirSync(settings.out, { recursive: true });
  writeFileSync(join(settings.out, 'bench.json'), `${JSON.stringify(results, null, 1)}\n`);
  writeFileSync(join(settings.out, 'bench.svg'), await renderChart(results));
  process.stdout.write(`\nwrote ${join(settings.out, 'bench.json')} and ${join(settings.out, 'bench.svg')}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`error: ${(e as Error).message}\n`);
  process.exit(1);
});
