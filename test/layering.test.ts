/**
 * The core's layers point one way: src/value-error.ts and src/net/ (addresses, CIDRs)
 * are leaves; src/config/ uses only them and src/errors.ts, and sees the host only
 * through the lookups it is given (config/lookups.ts); no module imports itself back
 * through a cycle. Read from the sources' import lines, so it needs no build.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from './fixtures/dist.js';

const SRC = join(REPO_ROOT, 'src');

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

/** Module (path under src, no extension) → the tpctl modules it imports, type-only imports included. */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of sources(SRC)) {
    const text = readFileSync(file, 'utf8');
    const deps = [...text.matchAll(/^(?:import|export)[^'";]*?from '(\.[^']+)'/gms), ...text.matchAll(/import\('(\.[^']+)'\)/g)]
      .map((m) => relative(SRC, resolve(dirname(file), m[1] ?? '')).replace(/\.js$/, ''));
    graph.set(relative(SRC, file).replace(/\.ts$/, ''), [...new Set(deps)]);
  }
  return graph;
}

describe('layering', () => {
  const graph = importGraph();

  it('reads the imports (type-only and dynamic ones too)', () => {
    expect(graph.get('config/resolve')).toEqual(expect.arrayContaining(['config/layers', 'config/lookups']));
    expect(graph.get('host/users')).toContain('config/lookups');
    expect(graph.get('commands/install')).toEqual(expect.arrayContaining(['ebpf/index', 'config/annotations']));
  });

  it('src/net and src/value-error.ts are leaves', () => {
    expect(graph.get('value-error')).toEqual([]);
    for (const [mod, deps] of graph) if (mod.startsWith('net/')) expect(deps, mod).toEqual(deps.filter((d) => d === 'value-error'));
  });

  it('src/config uses only config, net, value-error and errors (the host only through config/lookups.ts)', () => {
    for (const [mod, deps] of graph) {
      if (!mod.startsWith('config/')) continue;
      const outside = deps.filter((d) => !d.startsWith('config/') && !d.startsWith('net/') && d !== 'value-error' && d !== 'errors');
      expect(outside, mod).toEqual([]);
    }
  });

  it('static imports form no cycle', () => {
    const staticGraph = new Map<string, string[]>();
    for (const file of sources(SRC)) {
      const text = readFileSync(file, 'utf8');
      const deps = [...text.matchAll(/^(?:import|export)[^'";]*?from '(\.[^']+)'/gms)].map((m) => relative(SRC, resolve(dirname(file), m[1] ?? '')).replace(/\.js$/, ''));
      staticGraph.set(relative(SRC, file).replace(/\.ts$/, ''), deps);
    }
    const cycles: string[] = [];
    const state = new Map<string, 'open' | 'done'>();
    const visit = (mod: string, path: string[]): void => {
      if (state.get(mod) === 'done') return;
      if (state.get(mod) === 'open') {
        cycles.push([...path.slice(path.indexOf(mod)), mod].join(' → '));
        return;
      }
      state.set(mod, 'open');
      for (const d of staticGraph.get(mod) ?? []) visit(d, [...path, mod]);
      state.set(mod, 'done');
    };
    for (const mod of staticGraph.keys()) visit(mod, []);
    expect(cycles).toEqual([]);
  });
});
