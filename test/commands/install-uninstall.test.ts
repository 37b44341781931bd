/**
 * The install/uninstall commands wired to the real iptables engine, run through the
 * built CLI inside a private network namespace (never the root one): install adds
 * tpctl's chains, a second install changes nothing, uninstall leaves the nat table as
 * it was, a second uninstall has nothing to remove.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { normalizeIptablesSave } from '../../src/sandbox/harness.js';
import { REPO_ROOT, buildDist } from '../fixtures/dist.js';
import { scaledMs } from '../../src/sandbox/timeout-scale.js';

const cli = join(REPO_ROOT, 'dist', 'cli.js');
const netns = `tpt-cmd-${process.pid}`;
const inNs = ['--net=/run/netns/' + netns];
let bpffs = '';

async function inNetns(cmd: string[], input?: string) {
  return execa('nsenter', [...inNs, ...cmd], { reject: false, timeout: scaledMs(30_000), ...(input === undefined ? {} : { input }) });
}

const tpctl = (args: string[]) => inNetns(['node', cli, ...args]);
const natRules = async () => (await inNetns(['iptables-save', '-t', 'nat'])).stdout;
const withoutCounters = (save: string) => normalizeIptablesSave(save).join('\n');

beforeAll(async () => {
  await buildDist(cli);
  await execa('ip', ['netns', 'add', netns]);
  await inNetns(['ip', 'link', 'set', 'lo', 'up']);
  bpffs = mkdtempSync(join(tmpdir(), `tpt-cmd-bpffs-${process.pid}-`)); // empty: no eBPF state to find
}, scaledMs(130_000));

afterAll(async () => {
  await execa('ip', ['netns', 'del', netns], { reject: false });
  if (bpffs) rmSync(bpffs, { recursive: true, force: true });
});

describe('install → install → uninstall → uninstall (iptables, in a netns)', () => {
  const installArgs = ['install', 'transparent-proxy', '--kuma-dp-user', '5678', '--ip-family-mode', 'ipv4', '--exclude-inbound-ports', '22'];

  it('round-trips and is idempotent', async () => {
    // A foreign rule that must survive untouched.
    await inNetns(['iptables', '-t', 'nat', '-A', 'OUTPUT', '-p', 'tcp', '--dport', '9', '-j', 'RETURN']);
    const before = withoutCounters(await natRules());

    const first = await tpctl(installArgs);
    expect(first.stderr).toBe('');
    expect(first.exitCode).toBe(0);
    expect(first.stdout.trim().split('\n').at(-1)).toBe('transparent proxy installed');
    const installed = await natRules();
    expect(installed).toContain('TPCTL_OUTPUT');
    expect(installed).toContain('--dport 9 -j RETURN');

    const second = await tpctl(installArgs);
    expect(second.exitCode).toBe(0);
    expect(second.stdout.trim().split('\n').at(-1)).toBe('transparent proxy already installed with these settings; nothing changed');
    expect(withoutCounters(await natRules())).toBe(withoutCounters(installed));

    const removed = await tpctl(['uninstall', 'transparent-proxy', '--ebpf-bpffs-path', bpffs]);
    expect(removed.stderr).toBe('');
    expect(removed.exitCode).toBe(0);
    expect(removed.stdout.trim().split('\n').at(-1)).toBe('transparent proxy removed');
    expect(withoutCounters(await natRules())).toBe(before);

    const again = await tpctl(['uninstall', 'transparent-proxy', '--ebpf-bpffs-path', bpffs]);
    expect(again.exitCode).toBe(0);
    expect(again.stdout.trim().split('\n').at(-1)).toBe('nothing to remove: no transparent proxy installed');
  });

  it('a config error changes nothing', async () => {
    const before = withoutCounters(await natRules());
    const r = await tpctl(['install', 'transparent-proxy', '--kuma-dp-user', '5678', '--vnet', 'docker0']);
    expect(r.exitCode).toBe(2);
    expect(r.stderr.trim()).toBe('error: --vnet: "docker0" has no CIDR (expected IFACE:CIDR, e.g. docker0:172.17.0.0/16, br+:172.18.0.0/16)');
    expect(withoutCounters(await natRules())).toBe(before);
  });
});
