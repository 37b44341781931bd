/**
 * The bench chart (docs/bench.svg): a vega-lite spec compiled and rendered to SVG by
 * vega's headless View (no browser, no canvas; text is measured by estimate).
 */
import type { BenchResults } from './results.js';

export function chartSpec(r: BenchResults): Record<string, unknown> {
  const engines = r.settings.engines;
  const levels = r.levels.map((l) => l.label);
  const rate = r.levels.flatMap((l) => engines.map((e) => ({ exclusions: l.label, engine: e, ratio: l.engines[e]?.ratio })));
  const install = r.levels.flatMap((l) =>
    engines.flatMap((e) => [
      { exclusions: l.label, engine: e, step: 'install', seconds: (l.engines[e]?.installMs ?? 0) / 1000 },
      { exclusions: l.label, engine: e, step: 'uninstall', seconds: (l.engines[e]?.uninstallMs ?? 0) / 1000 },
    ]),
  );
  const latency = r.latency.flatMap((x) => [
    { path: x.path, stat: 'p50', us: x.p50Us },
    { path: x.path, stat: 'p99', us: x.p99Us },
  ]);
  const startup = r.startup.filter((s) => s.name !== 'node -e 0').map((s) => ({ command: s.name, ratio: s.ratio }));
  const x = { field: 'exclusions', type: 'ordinal', sort: levels, title: 'excluded outbound CIDRs', axis: { labelAngle: 0 } };
  const color = { field: 'engine', type: 'nominal', title: 'engine' };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: { text: 'tpctl: make bench', subtitle: `${r.measuredAt}, medians of ${String(r.settings.rounds)} rotating rounds` },
    config: { font: 'sans-serif', view: { stroke: null } },
    vconcat: [
      {
        hconcat: [
          {
            title: 'connection rate ÷ no-redirect limit',
            width: 330,
            height: 200,
            data: { values: rate },
            layer: [
              { mark: { type: 'line', point: true }, encoding: { x, y: { field: 'ratio', type: 'quantitative', title: 'ratio', scale: { domainMin: 0 } }, color } },
              { data: { values: [{ y: 0.9 }] }, mark: { type: 'rule', strokeDash: [4, 4], color: 'gray' }, encoding: { y: { field: 'y', type: 'quantitative' } } },
            ],
          },
          {
            title: 'install / uninstall time (s)',
            width: 330,
            height: 200,
            data: { values: install },
            mark: { type: 'line', point: true },
            encoding: {
              x,
              y: { field: 'seconds', type: 'quantitative', title: 'seconds' },
              color,
              strokeDash: { field: 'step', type: 'nominal', title: 'step' },
            },
          },
        ],
      },
      {
        hconcat: [
          {
            title: 'keep-alive request/response through a relaying proxy (µs)',
            width: 330,
            height: 200,
            data: { values: latency },
            mark: 'bar',
            encoding: {
              x: { field: 'path', type: 'nominal', title: null, axis: { labelAngle: 0 } },
              xOffset: { field: 'stat' },
              y: { field: 'us', type: 'quantitative', title: 'µs' },
              color: { field: 'stat', type: 'nominal', title: 'percentile' },
            },
          },
          {
            title: 'start-up ÷ node -e 0',
            width: 330,
            height: 200,
            data: { values: startup },
            layer: [
              {
                mark: 'bar',
                encoding: {
                  y: { field: 'command', type: 'nominal', title: null, sort: null },
                  x: { field: 'ratio', type: 'quantitative', title: '× node -e 0' },
                },
              },
              { data: { values: [{ x: 1.5 }, { x: 2.5 }] }, mark: { type: 'rule', strokeDash: [4, 4], color: 'gray' }, encoding: { x: { field: 'x', type: 'quantitative' } } },
            ],
          },
        ],
      },
    ],
  };
}

export async function renderChart(r: BenchResults): Promise<string> {
  const vl = await import('vega-lite');
  const vega = await import('vega');
  const compiled = vl.compile(chartSpec(r) as unknown as Parameters<typeof vl.compile>[0]).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
