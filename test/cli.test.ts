/**
 * The built CLI (dist/cli.js) run as a process: exit codes, one-line errors without
 * stack frames, dry-run output. Nothing here changes the host (dry-run only).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { runCli, type CliIo } from '../src/cli.js';
import { install } from '../src/commands/install.js';
import { SETTING_IDS, settingOf } from '../src/config/settings.js';
import { PreflightError } from '../src/errors.js';
import { buildDist, REPO_ROOT } from './fixtures/dist.js';
import { scaledMs } from '../src/sandbox/timeout-scale.js';

// In-process runs below replace the install command to make it fail on demand; the
// process runs above use dist/cli.js and are unaffected.
vi.mock('../src/commands/install.js', () => ({ install: vi.fn(), configPaths: () => [] }));

const cli = join(REPO_ROOT, 'dist', 'cli.js');
const USER = ['--kuma-dp-user', '5678']; // this host has no kuma-dp user

function tpctl(args: string[], opts: { input?: string; uid?: number; env?: Record<string, string> } = {}) {
  return execa('node', [cli, ...args], { reject: false, cwd: REPO_ROOT, timeout: scaledMs(20_000), ...opts });
}

function expectOneLineError(stderr: string, line?: string): void {
  const lines = stderr.split('\n').filter(Boolean);
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^error: /);
  expect(stderr).not.toMatch(/^\s+at /m);
  if (line !== undefined) expect(lines[0]).toBe(line);
}

beforeAll(async () => {
  // Build so the test runs the current sources.
  await buildDist(cli);
}, scaledMs(130_000));

describe('usage errors exit 2 with one line', () => {
  it.each<[string, string[], string]>([
    ['unknown flag', ['install', 'transparent-proxy', '--bogus'], "error: unknown option '--bogus'"],
    ['misspelt flag', ['install', 'transparent-proxy', '--redirect-dn'], "error: unknown option '--redirect-dn' (Did you mean --redirect-dns?)"],
    ['unknown command', ['frobnicate'], "error: unknown command 'frobnicate' (expected install, uninstall, status or verify)"],
    ['no command', [], 'error: missing command (expected install, uninstall, status or verify; see tpctl --help)'],
    ['missing target', ['install'], 'error: install: missing what to install (expected: tpctl install transparent-proxy [flags])'],
    ['unknown command before the target', ['frobnicate', 'transparent-proxy'], "error: unknown command 'frobnicate' (expected install, uninstall, status or verify)"],
    ['misspelt command', ['uninstal', 'transparent-proxy'], "error: unknown command 'uninstal' (did you mean uninstall?)"],
    ['target missing before a flag', ['install', '--kuma-dp-user=5678'], 'error: install: missing what to install (expected: tpctl install transparent-proxy [flags])'],
    ['misspelt target', ['install', 'transparent-proxyy', '--kuma-dp-user', '5678'], "error: install: unknown target 'transparent-proxyy' (did you mean transparent-proxy?)"],
    ['unknown target', ['uninstall', 'everything'], "error: uninstall: unknown target 'everything' (expected: transparent-proxy)"],
    ['missing flag value', ['install', 'transparent-proxy', '--redirect-inbound-port'], "error: option '--redirect-inbound-port <port>' argument missing"],
    ['install-only flag on uninstall', ['uninstall', 'transparent-proxy', '--redirect-dns'], "error: unknown option '--redirect-dns'"],
    ['status without target', ['status'], 'error: status: missing what (expected: transparent-proxy)'],
    ['verify with a wrong target', ['verify', 'tp'], "error: verify: unknown target 'tp' (expected: transparent-proxy)"],
    ['status with two output formats', ['status', 'transparent-proxy', '--json', '--prometheus'], 'error: status: --json, --prometheus and --settings exclude each other'],
    ['install flag on status', ['status', 'transparent-proxy', '--redirect-dns'], "error: unknown option '--redirect-dns'"],
  ])('%s', async (_name, args, line) => {
    const r = await tpctl(args);
    expect(r.exitCode).toBe(2);
    expect(r.stdout).toBe('');
    expectOneLineError(r.stderr, line);
  });
});

describe('config errors exit 2 with one line naming the flag or file field', () => {
  it('a bad flag value', async () => {
    const r = await tpctl(['install', 'transparent-proxy', '--dry-run', ...USER, '--redirect-inbound-port', '0']);
    expect(r.exitCode).toBe(2);
    expectOneLineError(r.stderr, 'error: --redirect-inbound-port: "0" is out of range (expected an integer 1-65535)');
  });

  it('a bad value in a config file read from stdin', async () => {
    const r = await tpctl(['install', 'transparent-proxy', '--dry-run', ...USER, '--config', '-'], {
      input: 'redirect:\n  outbound:\n    excludePortsForIPs: [10.0.0.0/99]\n',
    });
    expect(r.exitCode).toBe(2);
    expectOneLineError(
      r.stderr,
      'error: <stdin>: redirect.outbound.excludePortsForIPs: "10.0.0.0/99" has an invalid prefix length (expected /0 to /32 for IPv4)',
    );
  });

  it('an unknown user', async () => {
    const r = await tpctl(['install', 'transparent-proxy', '--dry-run', '--kuma-dp-user', 'no-such-user-here']);
    expect(r.exitCode).toBe(2);
    expectOneLineError(r.stderr, 'error: --kuma-dp-user: no user "no-such-user-here" on this host (create it or pass a uid)');
  });

  it('a bad KUMA_TRANSPARENT_PROXY_* variable names the variable', async () => {
    const r = await tpctl(['install', 'transparent-proxy', '--dry-run', ...USER], { env: { KUMA_TRANSPARENT_PROXY_REDIRECT_DNS_PORT: '0' } });
    expect(r.exitCode).toBe(2);
    expectOneLineError(r.stderr, 'error: KUMA_TRANSPARENT_PROXY_REDIRECT_DNS_PORT: "0" is out of range (expected an integer 1-65535)');
  });

  it('a missing --pod-annotations file', async () => {
    const r = await tpctl(['install', 'transparent-proxy', '--dry-run', ...USER, '--pod-annotations', '/nonexistent/annotations']);
    expect(r.exitCode).toBe(2);
    expectOneLineError(
      r.stderr,
      'error: --pod-annotations: cannot read /nonexistent/annotations: no such file (mount the downward-API volume with the metadata.annotations field)',
    );
  });

  it('a missing config file', async () => {
    const r = await tpctl(['install', 'transparent-proxy', '--dry-run', ...USER, '--config', '/nonexistent/tp.yaml']);
    expect(r.exitCode).toBe(2);
    expectOneLineError(r.stderr, 'error: --config: cannot read /nonexistent/tp.yaml: no such file');
  });
});

describe('--dry-run', () => {
  it('prints the iptables ruleset for both families and exits 0', async () => {
    const r = await tpctl(['install', 'transparent-proxy', '--dry-run', ...USER, '--exclude-inbound-ports', '22']);
    expect(r.exitCode).toBe(0);
    expect(r.stderr).toBe('');
    const out = r.stdout;
    expect(out.startsWith('# IPv4\n*nat\n')).toBe(true);
    expect(out).toContain('\n# IPv6\n*nat\n');
    expect(out.match(/^COMMIT$/gm)?.length).toBeGreaterThanOrEqual(2);
    expect(out).toContain('--to-ports 15006');
    expect(out).toContain('--to-ports 15001');
    expect(out).toContain('--uid-owner 5678');
  });

  it('ipv4 mode prints only the IPv4 ruleset', async () => {
    const r = await tpctl(['install', 'transparent-proxy', '--dry-run=true', ...USER, '--ip-family-mode', 'ipv4']);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain('# IPv4');
    expect(r.stdout).not.toContain('# IPv6');
  });

  it('flags win over a config file from stdin', async () => {
    const r = await tpctl(['install', 'transparent-proxy', '--dry-run', '--config', '-', '--redirect-outbound-port', '16001'], {
      input: JSON.stringify({ kumaDPUser: 5678, redirect: { inbound: { port: 16006 }, outbound: { port: 17001 } } }),
    });
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain('--to-ports 16006');
    expect(r.stdout).toContain('--to-ports 16001');
    expect(r.stdout).not.toContain('17001');
  });

  it("takes the latest kumactl's comma-separated --config list; later files win", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tpctl-9a-config-'));
    try {
      writeFileSync(join(dir, 'a.yaml'), 'kumaDPUser: 5678\nredirect: {inbound: {port: 16006}, outbound: {port: 16001}}\n');
      writeFileSync(join(dir, 'b.yaml'), 'redirect: {outbound: {port: 17001}}\n');
      const r = await tpctl(['install', 'transparent-proxy', '--dry-run', '--config', `${join(dir, 'a.yaml')},${join(dir, 'b.yaml')}`]);
      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.stdout).toContain('--to-ports 16006');
      expect(r.stdout).toContain('--to-ports 17001');
      expect(r.stdout).not.toContain('16001');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("accepts kumactl's --config-file spelling", async () => {
    const r = await tpctl(['install', 'transparent-proxy', '--dry-run', '--config-file', '-'], {
      input: 'kumaDPUser: 5678\nredirect:\n  inbound:\n    enabled: false\n',
    });
    expect(r.exitCode).toBe(0);
    expect(r.stdout).not.toContain('--to-ports 15006');
    expect(r.stdout).toContain('--to-ports 15001');
  });

  it('a dry run set in a config file prints no install summary', async () => {
    const r = await tpctl(['install', 'transparent-proxy', ...USER, '--config', '-'], { input: 'dryRun: true\n' });
    expect(r.exitCode).toBe(0);
    expect(r.stdout.startsWith('# IPv4\n*nat\n')).toBe(true);
    expect(r.stdout.trimEnd().split('\n').at(-1)).toBe('COMMIT');
  });

  it('prints the eBPF plan with --ebpf-enabled', async () => {
    const r = await tpctl(['install', 'transparent-proxy', '--dry-run', ...USER, '--ebpf-enabled', '--ebpf-instance-ip', '10.0.0.5']);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain('tp_connect4');
    expect(r.stdout).toContain('10.0.0.5');
    expect(r.stdout).not.toContain('*nat');
  });

  it('works without root', async () => {
    const r = await tpctl(['install', 'transparent-proxy', '--dry-run', ...USER], { uid: 65534 });
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain('# IPv4');
  });

  it('prints warnings on stderr and still succeeds', async () => {
    const r = await tpctl(['install', 'transparent-proxy', '--dry-run', '--kuma-dp-uid', '5678', '--skip-resolv-conf']);
    expect(r.exitCode).toBe(0);
    expect(r.stderr.split('\n').filter(Boolean)).toEqual([
      'warning: --kuma-dp-uid is deprecated; use --kuma-dp-user (it takes a uid or a name)',
      'warning: --skip-resolv-conf is deprecated and has no effect (tpctl never edits resolv.conf)',
    ]);
  });
});

describe('help and version', () => {
  it('--help exits 0 on stdout', async () => {
    const r = await tpctl(['install', 'transparent-proxy', '--help']);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain('Usage: tpctl install transparent-proxy [options]');
    expect(r.stdout).toContain('--exclude-outbound-ports-for-uids');
    expect(r.stdout).not.toMatch(/^\s+--kuma-dp-uid/m); // deprecated: not among the options…
    // …but every accepted flag is named: the table's options, and the older spellings in one line.
    for (const id of SETTING_IDS) {
      const flag = settingOf(id).flag?.split(' ')[0];
      if (flag) expect(r.stdout, flag).toContain(flag);
    }
    expect(r.stdout).toContain("Also accepted (kumactl's older spellings; README: Flags): --config-file, --kuma-dp-uid, --redirect-inbound-port-v6,");
  });

  it('--version prints the package version', async () => {
    const r = await tpctl(['--version']);
    expect(r.exitCode).toBe(0);
    expect(r.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });
});

describe('unexpected errors (in process)', () => {
  function capture(env: NodeJS.ProcessEnv = {}): CliIo & { out: string; err: string } {
    const io = { out: '', err: '', env, stdout: (t: string) => void (io.out += t), stderr: (t: string) => void (io.err += t) };
    return io;
  }
  const args = ['install', 'transparent-proxy', '--kuma-dp-user', '5678'];

  it('a plain Error: exit 1, one line, no stack', async () => {
    vi.mocked(install).mockRejectedValueOnce(new Error('boom\nsecond line'));
    const io = capture();
    expect(await runCli(args, io)).toBe(1);
    expect(io.err).toBe('error: boom second line\n');
  });

  it('a stack only with --verbose or TPCTL_DEBUG=1', async () => {
    vi.mocked(install).mockRejectedValueOnce(new Error('boom'));
    const verbose = capture();
    expect(await runCli([...args, '--verbose'], verbose)).toBe(1);
    expect(verbose.err).toMatch(/^error: boom\nError: boom\n\s+at /);

    vi.mocked(install).mockRejectedValueOnce(new Error('boom'));
    const debug = capture({ TPCTL_DEBUG: '1' });
    expect(await runCli(args, debug)).toBe(1);
    expect(debug.err).toMatch(/\n\s+at /);
  });

  it('a TpError exits with its own code and its hint', async () => {
    vi.mocked(install).mockRejectedValueOnce(new PreflightError('install transparent-proxy: missing CAP_NET_ADMIN', { hint: 'run as root' }));
    const io = capture();
    expect(await runCli(args, io)).toBe(3);
    expect(io.err).toBe('error: install transparent-proxy: missing CAP_NET_ADMIN (run as root)\n');
  });
});
