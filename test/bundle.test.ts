/**
 * dist/tpctl.cjs — the `tpctl` bin, which runs the bundle dist/tpctl-main.cjs
 * (scripts/bundle.mjs) — behaves like dist/cli.js: version, dry-run text, one-line
 * errors, and (root, in a sandbox) a real install and uninstall per engine that
 * redirect real traffic, which exercises what bundling could break: koffi and libbpf,
 * tools run through node:child_process, the path of bpf/prebuilt. And the bin's V8
 * code cache is used when it fits and ignored when it does not.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  APP_UID, CLIENT_HOSTS, EXTRA_CLIENT_HOSTS, PROXY_UID, REMOTE_PORTS,
  describeCli, engineFlags, probeTcp, startCast, uninstallFlags, type EngineName,
} from '../src/sandbox/harness.js';
import { createSandbox } from '../src/sandbox/sandbox.js';
import { runIn } from '../src/sandbox/commands.js';
import type { Sandbox } from '../src/sandbox/types.js';
import { buildDist, REPO_ROOT } from './fixtures/dist.js';
import { scaledMs } from '../src/sandbox/timeout-scale.js';

const bundle = join(REPO_ROOT, 'dist', 'tpctl.cjs');
const cli = join(REPO_ROOT, 'dist', 'cli.js');
const USER = ['--kuma-dp-user', '5678'];

const run = (file: string, args: string[]) => execa('node', [file, ...args], { reject: false, cwd: '/', timeout: scaledMs(20_000) });

beforeAll(async () => {
  await buildDist(cli);
  // Bundle the current dist/ (what `make build` does after tsc).
  await execa('node', ['scripts/bundle.mjs'], { cwd: REPO_ROOT, timeout: scaledMs(60_000) });
}, scaledMs(130_000));

describe('the bundled CLI', () => {
  it('is what the package bin runs', () => {
    const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string>; version: string };
    expect(pkg.bin.tpctl).toBe('dist/tpctl.cjs');
  });

  it.each<[string, string[]]>([
    ['--version', ['--version']],
    ['iptables dry run', ['install', 'transparent-proxy', '--dry-run', ...USER, '--exclude-outbound-ips', '10.0.0.0/8']],
    ['eBPF dry run (default bpf/prebuilt path)', ['install', 'transparent-proxy', '--dry-run', ...USER, '--ebpf-enabled', '--ebpf-instance-ip', '10.1.2.3']],
    ['a bad flag value', ['install', 'transparent-proxy', '--dry-run', ...USER, '--redirect-inbound-port', '0']],
    ['an unknown flag', ['install', 'transparent-proxy', '--bogus']],
  ])('%s: same output and exit code as dist/cli.js', async (_name, args) => {
    const [a, b] = await Promise.all([run(bundle, args), run(cli, args)]);
    expect({ code: a.exitCode, stdout: a.stdout, stderr: a.stderr }).toEqual({ code: b.exitCode, stdout: b.stdout, stderr: b.stderr });
    expect(a.stdout + a.stderr).not.toBe('');
  });

  it('runs the bundle from a V8 code cache that this Node accepts', async () => {
    // The bin's own check, done by hand: same build id, and V8 does not reject the data.
    const main = join(REPO_ROOT, 'dist', 'tpctl-main.cjs');
    const check = `
      const { readFileSync } = require('node:fs'); const { Script } = require('node:vm');
      const source = readFileSync(${JSON.stringify(main)}, 'utf8'); const file = readFileSync(${JSON.stringify(`${main}.cache`)});
      const nl = file.indexOf(10);
      if (!source.startsWith(file.toString('utf8', 0, nl + 1))) { console.log('other build'); process.exit(0); }
      const s = new Script('(function (exports, require, module, __filename, __dirname) {' + source + '\\n})', { filename: ${JSON.stringify(main)}, cachedData: file.subarray(nl + 1) });
      console.log(s.cachedDataRejected ? 'rejected' : 'accepted');`;
    const r = await execa('node', ['-e', check], { reject: false, timeout: scaledMs(20_000) });
    expect(r.stdout.trim()).toBe('accepted');
  });

  it('never offers a cache from another build, and runs without one', async () => {
    const dir = mkdtempSync(join(tmpdir(), `tpt-bundle-${process.pid}-`));
    try {
      mkdirSync(join(dir, 'dist'));
      for (const f of ['tpctl.cjs', 'tpctl-main.cjs']) copyFileSync(join(REPO_ROOT, 'dist', f), join(dir, 'dist', f));
      copyFileSync(join(REPO_ROOT, 'package.json'), join(dir, 'package.json'));
      symlinkSync(join(REPO_ROOT, 'node_modules'), join(dir, 'node_modules'));
      const expected = await run(bundle, ['--version']);
      // no cache at all
      expect((await run(join(dir, 'dist', 'tpctl.cjs'), ['--version'])).stdout).toBe(expected.stdout);
      // a cache whose build id is another build's: ignored (V8 checks only the source length)
      const cache = readFileSync(join(REPO_ROOT, 'dist', 'tpctl-main.cjs.cache'));
      writeFileSync(join(dir, 'dist', 'tpctl-main.cjs.cache'), Buffer.concat([Buffer.from('//tpctl-build another\n'), cache.subarray(cache.indexOf(10) + 1)]));
      const r = await run(join(dir, 'dist', 'tpctl.cjs'), ['--version']);
      expect({ code: r.exitCode, stdout: r.stdout, stderr: r.stderr }).toEqual({ code: 0, stdout: expected.stdout, stderr: '' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('finds bpf/prebuilt of the package whatever the working directory', async () => {
    const r = await run(bundle, ['install', 'transparent-proxy', '--dry-run', ...USER, '--ebpf-enabled', '--ebpf-instance-ip', '10.1.2.3']);
    expect(r.stdout).toContain(`objects: ${join(REPO_ROOT, 'bpf', 'prebuilt', 'sock_addr.bpf.o')}`);
  });
});

describe('the bundled CLI installs for real (sandbox)', () => {
  let sb: Sandbox | undefined;
  beforeAll(async () => {
    sb = await createSandbox({ name: `tpe2e-bundle-${process.pid}`, extraClientHosts: EXTRA_CLIENT_HOSTS });
    await startCast(sb);
  });
  afterAll(async () => {
    await sb?.destroy();
  });

  it.each<EngineName>(['iptables-nft', 'nftables', 'ebpf'])('%s: install redirects, status sees it healthy, uninstall removes', async (engine) => {
    const s = sb!;
    const tpctl = (args: string[]) => runIn(s, 'mesh', [process.execPath, bundle, ...args], { timeoutMs: scaledMs(30_000) });
    const inst = await tpctl(['install', 'transparent-proxy', '--kuma-dp-user', String(PROXY_UID), ...engineFlags(engine, s)]);
    expect(inst.exitCode, describeCli(inst)).toBe(0);
    try {
      const r = await probeTcp(s, { host: 'mesh', uid: APP_UID }, s.v4(CLIENT_HOSTS.remote), REMOTE_PORTS.plain);
      expect(r.reply).toMatchObject({ via: 'proxy', origDst: `${s.v4(CLIENT_HOSTS.remote)}:${REMOTE_PORTS.plain}` });
      const st = await tpctl(['status', 'transparent-proxy', ...(engine === 'ebpf' ? ['--ebpf-bpffs-path', s.bpffsPath] : [])]);
      expect(st.exitCode, describeCli(st)).toBe(0);
      expect(st.stdout.split('\n'), st.stdout).toContain('health: ok, matches the recorded settings');
    } finally {
      const un = await tpctl(['uninstall', 'transparent-proxy', ...uninstallFlags(engine, s)]);
      expect(un.exitCode, describeCli(un)).toBe(0);
    }
    const r = await probeTcp(s, { host: 'mesh', uid: APP_UID }, s.v4(CLIENT_HOSTS.remote), REMOTE_PORTS.plain);
    expect(r.reply.via).toBe('remote');
  });
});
