/** What `make bench` measured (docs/bench.json), and the table it prints. */

export interface StartupRow {
  name: string;
  /** median wall time, spawn to exit */
  ms: number;
  /** ms ÷ the median of `node -e 0` */
  ratio: number;
}

export interface PathAtLevel {
  connPerSec: number;
  /** connection rate ÷ the no-redirect rate measured next to it (median of rounds) */
  ratio: number;
  installMs?: number;
  uninstallMs?: number;
}

export interface LevelResult {
  label: string;
  cidrs: number;
  ports: number;
  /** by path: "direct" and each engine */
  engines: Record<string, PathAtLevel>;
}

/** An engine redirecting to a listener that does not ask for the original destination (no exclusions). */
export interface BareRow {
  engine: string;
  connPerSec: number;
  /** ÷ the no-redirect rate measured next to it (median of rounds) */
  ratio: number;
}

export interface LatencyRow {
  path: string;
  p50Us: number;
  p99Us: number;
  reqPerSec: number;
  p50Ratio: number;
}

export interface BenchResults {
  measuredAt: string;
  durationS: number;
  settings: Record<string, unknown> & { engines: string[] };
  startup: StartupRow[];
  levels: LevelResult[];
  /** Absent in results written before it was measured. */
  bare?: BareRow[];
  latency: LatencyRow[];
}

const num = (x: number | undefined, digits = 0): string => (x === undefined ? '—' : x.toFixed(digits));

/** The bench report as markdown tables (the README pastes them as they are). */
export function reportLines(r: BenchResults): string[] {
  const engines = r.settings.engines;
  const out: string[] = [];
  out.push(`Measured ${r.measuredAt} in ${r.durationS} s; medians of ${String(r.settings.rounds)} rotating rounds (start-up: ${String(r.settings.startupRuns)}).`, '');
  if (r.startup.length) {
    out.push('Start-up (wall time, spawn to exit)', '', '| command | ms | × node -e 0 |', '|---|---:|---:|');
    for (const s of r.startup) out.push(`| ${s.name} | ${num(s.ms, 1)} | ${num(s.ratio, 2)} |`);
  }
  if (r.levels.length) levelLines(r, engines, out);
  if (r.bare?.length) {
    out.push('', 'No exclusions, redirected to a bare listener (answers like the remote server, no SO_ORIGINAL_DST lookup)', '');
    out.push('| engine | conn/s | ratio |', '|---|---:|---:|');
    for (const b of r.bare) out.push(`| ${b.engine} | ${num(b.connPerSec)} | ${num(b.ratio, 3)} |`);
  }
  if (r.latency.length) {
    out.push('', 'Request/response latency, keep-alive, through a relaying proxy', '', '| path | p50 µs | p99 µs | req/s | p50 × direct |', '|---|---:|---:|---:|---:|');
    for (const x of r.latency) out.push(`| ${x.path} | ${x.p50Us} | ${x.p99Us} | ${x.reqPerSec} | ${num(x.p50Ratio, 2)} |`);
  }
  return out;
}

function levelLines(r: BenchResults, engines: string[], out: string[]): void {
  out.push('', 'Connection rate ÷ no-redirect limit, by excluded outbound CIDRs', '');
  out.push(`| exclusions | direct conn/s | ${engines.map((e) => `${e} conn/s | ${e} ratio`).join(' | ')} |`);
  out.push(`|---|---:|${engines.map(() => '---:|---:').join('|')}|`);
  for (const l of r.levels) {
    out.push(`| ${l.label} | ${num(l.engines.direct?.connPerSec)} | ${engines.map((e) => `${num(l.engines[e]?.connPerSec)} | ${num(l.engines[e]?.ratio, 3)}`).join(' | ')} |`);
  }
  out.push('', 'Install / uninstall time (ms), by excluded outbound CIDRs', '');
  out.push(`| exclusions | ${engines.map((e) => `${e} install | ${e} uninstall`).join(' | ')} |`);
  out.push(`|---|${engines.map(() => '---:|---:').join('|')}|`);
  for (const l of r.levels) {
    out.push(`| ${l.label} | ${engines.map((e) => `${num(l.engines[e]?.installMs)} | ${num(l.engines[e]?.uninstallMs)}`).join(' | ')} |`);
  }
}

export function printReport(r: BenchResults, write: (s: string) => void): void {
  write(`\n${reportLines(r).join('\n')}\n`);
}
