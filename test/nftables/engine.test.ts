/**
 * The nftables engine against the real kernel, in a sandbox (root): what the
 * conformance suite does not cover. Every golden file passes `nft --check`;
 * uninstall leaves `nft list ruleset` byte-identical with foreign tables around;
 * foreign nat chains at other priorities keep working, with traffic; the per-family
 * layout of kernels before 5.2 works and is replaced by the inet one in one
 * transaction; a host with nft and no iptables binary gets the nftables engine from
 * kumactl's flags alone.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  addForeignNftTables, APP_PORTS, APP_UID, conformanceFlags, engineFlags, EXTRA_CLIENT_HOSTS, describeCli, distDir, nftRuleset, probeTcp, REMOTE_PORTS, runCli, startCast,
} from '../../src/sandbox/harness.js';
import { createSandbox } from '../../src/sandbox/sandbox.js';
import { runIn } from '../../src/sandbox/commands.js';
import type { Sandbox } from '../../src/sandbox/types.js';
import { hostPort } from '../../src/sandbox/wire.js';
import { GOLDEN_DIR } from './fixtures.js';
import { scaledMs } from '../../src/sandbox/timeout-scale.js';

const app = { host: 'mesh' as const, uid: APP_UID };
let sb: Sandbox;

beforeAll(async () => {
  sb = await createSandbox({ name: `tpe2e-nftx-${process.pid}`, extraClientHosts: EXTRA_CLIENT_HOSTS });
  await startCast(sb);
});

afterAll(async () => {
  if (!sb) return;
  try {
    await runCli(sb, ['uninstall', 'transparent-proxy']);
  } finally {
    await sb.destroy();
  }
});

async function nft(args: string[], input?: string): Promise<string> {
  const r = await runIn(sb, 'mesh', ['nft', ...args], input === undefined ? {} : { input });
  if (r.exitCode !== 0) throw new Error(`nft ${args.join(' ')}: ${r.stderr.trim()}`);
  return r.stdout;
}

async function mustCli(args: string[]): Promise<string> {
  const r = await runCli(sb, args);
  expect(r.exitCode, describeCli(r)).toBe(0);
  return r.stdout;
}

const install = (extra: string[] = []) => mustCli(['install', 'transparent-proxy', ...conformanceFlags(sb), '--engine', 'nftables', ...extra]);
const uninstall = () => mustCli(['uninstall', 'transparent-proxy']);

async function expectProxied(host: string, port: number): Promise<void> {
  const r = await probeTcp(sb, app, host, port);
  expect(r.reply, JSON.stringify(r)).toMatchObject({ via: 'proxy', listener: 'outbound', origDst: hostPort(host, port) });
}

describe('nftables engine', () => {
  it('every golden file passes nft --check on this kernel', async () => {
    const files = readdirSync(GOLDEN_DIR).filter((f) => f.endsWith('.nft'));
    expect(files.length).toBeGreaterThanOrEqual(8);
    for (const f of files) {
      await expect(nft(['--check', '-f', '-'], readFileSync(join(GOLDEN_DIR, f), 'utf8')), f).resolves.toBe('');
    }
  });

  it('install with every option, reinstall (no change, same rule handles), uninstall: nft list ruleset byte-identical, foreign tables untouched', async () => {
    await addForeignNftTables(sb);
    const before = await nftRuleset(sb);
    expect(before).toContain('table inet firewalld');
    expect(before).toContain('table ip nat'); // iptables-nft's
    const everything = ['--drop-invalid-packets', '--iptables-logs', '--vnet', 'docker0:172.17.0.0/16', '--vnet', 'br+:fd00:99::/64'];
    await install(everything);
    const during = await nftRuleset(sb);
    expect(during).toContain('table inet tpctl {');
    expect(during).toContain('iifname "br*"');
    // Handles change whenever a table is re-created: equal handles mean it was left alone.
    const withHandles = await nft(['--handle', '--stateless', 'list', 'ruleset']);
    expect(await install(everything)).toBe('nftables (inet tpctl): already installed, nothing changed\ntransparent proxy already installed with these settings; nothing changed\n');
    expect(await nft(['--handle', '--stateless', 'list', 'ruleset'])).toBe(withHandles);
    await expectProxied(sb.ipv4.client, REMOTE_PORTS.plain);
    await uninstall();
    expect(await nftRuleset(sb)).toBe(before);
  });

  for (const engine of ['iptables-nft', 'nftables'] as const) {
    it(`--vnet (${engine}): TCP arriving on the vnet interface for an address outside its CIDR lands on the outbound listener, both families`, async () => {
      // The client host's own address plays the virtual network: its connection to the mesh host's app is "outbound".
      const vnets = ['--vnet', `${sb.iface.mesh}:${sb.ipv4.client}/32`, '--vnet', `${sb.iface.mesh}:${sb.ipv6.client}/128`];
      await mustCli(['install', 'transparent-proxy', ...conformanceFlags(sb), ...engineFlags(engine, sb), ...vnets]);
      try {
        for (const mesh of [sb.ipv4.mesh, sb.ipv6.mesh]) {
          const r = await probeTcp(sb, { host: 'client' }, mesh, APP_PORTS.plain);
          expect(r.reply, JSON.stringify(r)).toMatchObject({ via: 'proxy', listener: 'outbound', origDst: hostPort(mesh, APP_PORTS.plain) });
        }
      } finally {
        await mustCli(['uninstall', 'transparent-proxy']);
      }
    });
  }

  it('foreign nat chains before and after ours keep working, with traffic', async () => {
    // Before ours (-150): its DNAT wins, ours is not consulted for that connection.
    // After ours (-50): sees what ours lets through (an excluded port) and NATs it.
    const remote = sb.ipv4.client;
    const script = [
      'table ip foreign_prio {',
      `\tchain early { type nat hook output priority -150; policy accept; meta skuid ${APP_UID} ip daddr ${remote} tcp dport ${REMOTE_PORTS.laterExcluded} dnat to ${remote}:${REMOTE_PORTS.plain}; }`,
      `\tchain late { type nat hook output priority -50; policy accept; meta skuid ${APP_UID} ip daddr ${remote} tcp dport ${REMOTE_PORTS.excluded} dnat to ${remote}:${REMOTE_PORTS.uidExcluded}; }`,
      '}',
      '',
    ].join('\n');
    await nft(['-f', '-'], script);
    try {
      await install();
      const early = await probeTcp(sb, app, remote, REMOTE_PORTS.laterExcluded);
      expect(early.reply, JSON.stringify(early)).toMatchObject({ via: 'remote', local: hostPort(remote, REMOTE_PORTS.plain) });
      const late = await probeTcp(sb, app, remote, REMOTE_PORTS.excluded);
      expect(late.reply, JSON.stringify(late)).toMatchObject({ via: 'remote', local: hostPort(remote, REMOTE_PORTS.uidExcluded) });
      await expectProxied(remote, REMOTE_PORTS.plain);
      await uninstall();
      // Ours gone, theirs still there and still working.
      const after = await probeTcp(sb, app, remote, REMOTE_PORTS.excluded);
      expect(after.reply).toMatchObject({ via: 'remote', local: hostPort(remote, REMOTE_PORTS.uidExcluded) });
    } finally {
      await nft(['delete', 'table', 'ip', 'foreign_prio']);
    }
  });

  it('the per-family layout (kernels before 5.2) redirects both families; an inet install replaces it in one transaction', async () => {
    const before = await nftRuleset(sb);
    const out = await installWithLayout('split');
    expect(out).toMatch(/^nftables \(ip tpctl, ip6 tpctl\): installed \d+ rules in \d+ chains, \d+ sets \(\d+ elements\)$/);
    expect(await nft(['list', 'tables'])).toMatch(/table ip tpctl\ntable ip6 tpctl|table ip6 tpctl\ntable ip tpctl/);
    await expectProxied(sb.ipv4.client, REMOTE_PORTS.plain);
    await expectProxied(sb.ipv6.client, REMOTE_PORTS.plain);
    expect(await installWithLayout('split')).toBe('nftables (ip tpctl, ip6 tpctl): already installed, nothing changed');

    await install();
    const tables = await nft(['list', 'tables']);
    expect(tables).toContain('table inet tpctl');
    expect(tables).not.toMatch(/table ip6? tpctl/);
    await expectProxied(sb.ipv6.client, REMOTE_PORTS.plain);
    await uninstall();
    expect(await nftRuleset(sb)).toBe(before);
  });

  it('a host with nft and no iptables binary: kumactl flags alone install the nftables engine, and say so', async () => {
    const before = await nftRuleset(sb);
    const r = await cliWithout(['xtables-nft-multi', 'xtables-legacy-multi'], ['install', 'transparent-proxy', ...conformanceFlags(sb)]);
    expect(r.exitCode, describeCli(r)).toBe(0);
    expect(r.stdout).toContain('engine: nftables (this host has nft but no iptables binary; choose with --engine)');
    expect(await nft(['list', 'tables'])).toContain('table inet tpctl');
    await expectProxied(sb.ipv4.client, REMOTE_PORTS.plain);
    await uninstall();
    expect(await nftRuleset(sb)).toBe(before);
  });

  it('--engine nftables on a host without nft: one line, exit 3, nothing changed', async () => {
    const before = await nftRuleset(sb);
    const r = await cliWithout(['nft'], ['install', 'transparent-proxy', ...conformanceFlags(sb), '--engine', 'nftables']);
    expect(r.exitCode, describeCli(r)).toBe(3);
    expect(r.stderr.trim().split('\n')).toEqual(['error: nftables: nft not found (install the nftables package: apt-get install nftables)']);
    expect(await nftRuleset(sb)).toBe(before);
  });
});

/** The real CLI in the mesh host, in a private mount namespace where the named /usr/sbin binaries are not executable (/dev/null over them). */
function cliWithout(binaries: string[], args: string[]) {
  const hide = binaries.map((b) => `mount --bind /dev/null /usr/sbin/${b}`).join(' && ');
  const argv = ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', `${hide} && exec "$@"`, 'sh', process.execPath, join(distDir, 'cli.js'), ...args];
  return runIn(sb, 'mesh', argv, { timeoutMs: scaledMs(30_000) });
}

/** installNftables with a forced layout, run from dist/ inside the mesh host; resolves to its output lines. */
async function installWithLayout(layout: 'inet' | 'split'): Promise<string> {
  const child = `
const input = JSON.parse(process.env.TPT_INPUT);
const { resolveConfig } = await import(input.resolve);
const { systemHostLookups } = await import(input.lookups);
const { installNftables } = await import(input.engine);
const { config } = resolveConfig({ flags: input.flags }, systemHostLookups());
const r = await installNftables(config, { info() {}, warn() {}, debug() {} }, { layout: input.layout });
process.stdout.write(r.lines.join('\\n'));
`;
  const flags = {
    kumaDpUser: '5678',
    redirectDns: true,
    resolvConfPath: sb.resolvConfPath,
    excludeOutboundPorts: String(REMOTE_PORTS.excluded),
    engine: 'nftables',
  };
  const input = JSON.stringify({
    resolve: pathToFileURL(join(distDir, 'config', 'resolve.js')).href,
    lookups: pathToFileURL(join(distDir, 'host', 'lookups.js')).href,
    engine: pathToFileURL(join(distDir, 'nftables', 'index.js')).href,
    flags,
    layout,
  });
  const r = await runIn(sb, 'mesh', [process.execPath, '--input-type=module', '-e', child], { env: { ...process.env, TPT_INPUT: input } as Record<string, string> });
  expect(r.exitCode, `${r.stderr}`).toBe(0);
  return r.stdout;
}
