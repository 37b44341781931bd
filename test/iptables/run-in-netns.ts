/**
 * A private network namespace for the privileged iptables tests, and a way to
 * call the built engine (dist/) inside it. Every iptables command the tests run
 * goes through `nsenter --net=/run/netns/NAME`; nothing touches the root netns.
 */
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { execa } from 'execa';
import { REPO_ROOT, buildDist as buildDistOnce } from '../fixtures/dist.js';
import type { TransparentProxyConfig, UninstallConfig } from '../../src/config/types.js';
import { scaledMs } from '../../src/sandbox/timeout-scale.js';

export { REPO_ROOT };
const ENGINE_MODULE = join(REPO_ROOT, 'dist', 'iptables', 'index.js');
const STEPS_MODULE = join(REPO_ROOT, 'dist', 'steps.js');

/** Builds dist/ once per worker and checks the engine module is there. */
export function buildDist(): Promise<void> {
  return buildDistOnce(ENGINE_MODULE);
}

let counter = 0;

export class Netns {
  private constructor(readonly name: string) {}

  static async create(): Promise<Netns> {
    const name = `tpt-ipt-${process.pid}-${++counter}`;
    await execa('ip', ['netns', 'add', name], { timeout: scaledMs(10_000) });
    const ns = new Netns(name);
    await ns.exec('ip', ['link', 'set', 'lo', 'up']);
    return ns;
  }

  get path(): string {
    return `/run/netns/${this.name}`;
  }

  /** Runs a command inside the namespace; throws on failure. */
  async exec(cmd: string, args: string[], opts: { input?: string; env?: Record<string, string> } = {}) {
    return execa('nsenter', [`--net=${this.path}`, cmd, ...args], {
      input: opts.input ?? '',
      env: opts.env,
      timeout: scaledMs(30_000),
    });
  }

  /** Raw `*-save` output of one family and backend. */
  async save(backend: 'nft' | 'legacy', family: 4 | 6): Promise<string> {
    const tool = `${family === 4 ? 'iptables' : 'ip6tables'}-${backend}-save`;
    return (await this.exec(tool, [])).stdout;
  }

  async restore(backend: 'nft' | 'legacy', family: 4 | 6, payload: string): Promise<void> {
    const tool = `${family === 4 ? 'iptables' : 'ip6tables'}-${backend}-restore`;
    await this.exec(tool, ['--noflush'], { input: payload });
  }

  async destroy(): Promise<void> {
    await execa('ip', ['netns', 'del', this.name], { reject: false, timeout: scaledMs(10_000) });
  }
}

export type EngineOutcome =
  | { ok: true; result: { changed: boolean; lines: string[] }; warnings: string[] }
  | { ok: false; error: { name: string; message: string; hint?: string }; warnings: string[] };

const CHILD = `
const input = JSON.parse(process.env.TPT_INPUT);
const engine = await import(input.module);
const { Steps, stepHooksFromEnv } = await import(input.stepsModule);
const steps = new Steps(stepHooksFromEnv(process.env));
const warnings = [];
const log = { info() {}, debug() {}, warn(m) { warnings.push(m); } };
try {
  const result = input.op === 'install'
    ? await engine.installIptables(input.cfg, log, { ...input.opts, steps })
    : await engine.uninstallIptables(input.cfg, log, { steps });
  process.stdout.write(JSON.stringify({ ok: true, result, warnings }));
} catch (e) {
  process.stdout.write(JSON.stringify({ ok: false, error: { name: e.name, message: e.message, hint: e.hint }, warnings }));
}
`;

/** Calls installIptables/uninstallIptables in a node process inside the namespace. */
export async function runEngine(
  ns: Netns,
  op: 'install' | 'uninstall',
  cfg: TransparentProxyConfig | UninstallConfig,
  opts: { env?: Record<string, string>; installOptions?: Record<string, unknown>; wrapper?: string[] } = {},
): Promise<EngineOutcome> {
  const input = JSON.stringify({ op, cfg, module: pathToFileURL(ENGINE_MODULE).href, stepsModule: pathToFileURL(STEPS_MODULE).href, opts: opts.installOptions ?? {} });
  const [cmd, ...args] = [...(opts.wrapper ?? []), process.execPath, '--input-type=module', '-e', CHILD];
  const r = await ns.exec(cmd!, args, { env: { ...opts.env, TPT_INPUT: input } });
  return JSON.parse(r.stdout) as EngineOutcome;
}

/** Both families' saves with only timestamps and counters neutralised (the strict comparison). */
export async function snapshot(ns: Netns, backend: 'nft' | 'legacy'): Promise<{ v4: string; v6: string }> {
  const strip = (t: string) =>
    t
      .split('\n')
      .filter((l) => !l.startsWith('#'))
      .map((l) => l.replace(/\[\d+:\d+\]$/, '[0:0]'))
      .join('\n');
  return { v4: strip(await ns.save(backend, 4)), v6: strip(await ns.save(backend, 6)) };
}

/** Foreign rules in nat, raw, mangle and filter (and a foreign user chain) that must survive tpctl. */
export function foreignRules(family: 4 | 6): string {
  const addr = family === 4 ? '10.9.9.9/32' : 'fd00:9::9/128';
  return [
    '*nat',
    ':FOREIGN_NAT - [0:0]',
    '-A PREROUTING -p tcp --dport 9999 -j ACCEPT',
    `-A OUTPUT -d ${addr} -j FOREIGN_NAT`,
    '-A FOREIGN_NAT -p tcp -j RETURN',
    '-A POSTROUTING -o lo -j ACCEPT',
    'COMMIT',
    '*raw',
    '-A OUTPUT -p udp --dport 5353 -j ACCEPT',
    '-A PREROUTING -p udp --sport 5353 -j ACCEPT',
    'COMMIT',
    '*mangle',
    '-A PREROUTING -p tcp --dport 7777 -j ACCEPT',
    '-A OUTPUT -p tcp --dport 7777 -j ACCEPT',
    'COMMIT',
    '*filter',
    ':FOREIGN_FILTER - [0:0]',
    '-A INPUT -p tcp --dport 22 -j ACCEPT',
    '-A INPUT -j FOREIGN_FILTER',
    '-A FOREIGN_FILTER -s ' + addr + ' -j DROP',
    'COMMIT',
    '',
  ].join('\n');
}

export function uninstallConfig(backend: UninstallConfig['iptablesBackend'] = 'auto'): UninstallConfig {
  return { dryRun: false, verbose: false, ebpf: { enabled: false, bpffsPath: '/run/tpctl/bpf' }, iptablesBackend: backend };
}
