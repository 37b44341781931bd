/**
 * Two engines never run together: installing one while another is installed
 * is refused with one line saying to uninstall first, and changes nothing. Real CLI,
 * inside a sandbox's mesh host (root).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { conformanceFlags, describeCli, engineFlags, engineState, runCli, uninstallFlags } from '../../src/sandbox/harness.js';
import { createSandbox } from '../../src/sandbox/sandbox.js';
import type { Sandbox } from '../../src/sandbox/types.js';

let sb: Sandbox;

beforeAll(async () => {
  sb = await createSandbox({ name: `tpe2e-switch-${process.pid}` });
});

afterAll(async () => {
  await sb?.destroy();
});

async function cli(args: string[]): Promise<Awaited<ReturnType<typeof runCli>>> {
  return runCli(sb, args);
}

async function mustSucceed(args: string[]): Promise<void> {
  const r = await cli(args);
  expect(r.exitCode, describeCli(r)).toBe(0);
}

describe('switching engines', () => {
  it('refuses eBPF over an iptables install, leaving both untouched', async () => {
    await mustSucceed(['install', 'transparent-proxy', ...conformanceFlags(sb), ...engineFlags('iptables-nft', sb)]);
    const before = await engineState('ebpf', sb);
    const r = await cli(['install', 'transparent-proxy', ...conformanceFlags(sb), ...engineFlags('ebpf', sb)]);
    expect(r.exitCode, describeCli(r)).toBe(3);
    expect(r.stderr.trim().split('\n')).toEqual([
      "error: install transparent-proxy: tpctl's iptables rules are installed (iptables-nft) " +
        '(the two engines cannot run together: run `tpctl uninstall transparent-proxy` first, then install again)',
    ]);
    expect(await engineState('ebpf', sb)).toBe(before);
    await mustSucceed(['uninstall', 'transparent-proxy', ...uninstallFlags('iptables-nft', sb)]);
  });

  it('refuses iptables over an eBPF install, leaving both untouched', async () => {
    await mustSucceed(['install', 'transparent-proxy', ...conformanceFlags(sb), ...engineFlags('ebpf', sb)]);
    const before = await engineState('ebpf', sb);
    // The iptables install looks for an eBPF state record at the bpffs path, which a
    // config file can name (the --ebpf-* flags need --ebpf-enabled).
    const cfg = join(sb.tmpDir, 'bpffs.yaml');
    writeFileSync(cfg, `ebpf:\n  bpffsPath: ${sb.bpffsPath}\n`);
    const r = await cli(['install', 'transparent-proxy', ...conformanceFlags(sb), '--config', cfg, '--iptables-backend', 'nft']);
    expect(r.exitCode, describeCli(r)).toBe(3);
    expect(r.stderr).toContain(`error: install transparent-proxy: an eBPF transparent proxy is installed (state in ${sb.bpffsPath})`);
    expect(await engineState('ebpf', sb)).toBe(before);
    await mustSucceed(['uninstall', 'transparent-proxy', ...uninstallFlags('ebpf', sb)]);
  });
});

describe('switching engines: nftables', () => {
  const install = (engine: Parameters<typeof engineFlags>[0]) => cli(['install', 'transparent-proxy', ...conformanceFlags(sb), ...engineFlags(engine, sb)]);

  it('refuses nftables over an iptables install, and iptables over an nftables install', async () => {
    await mustSucceed(['install', 'transparent-proxy', ...conformanceFlags(sb), ...engineFlags('iptables-nft', sb)]);
    let before = await engineState('nftables', sb);
    let r = await install('nftables');
    expect(r.exitCode, describeCli(r)).toBe(3);
    expect(r.stderr).toContain("error: install transparent-proxy: tpctl's iptables rules are installed (iptables-nft)");
    expect(await engineState('nftables', sb)).toBe(before);
    await mustSucceed(['uninstall', 'transparent-proxy']);

    await mustSucceed(['install', 'transparent-proxy', ...conformanceFlags(sb), ...engineFlags('nftables', sb)]);
    before = await engineState('nftables', sb);
    r = await install('iptables-legacy');
    expect(r.exitCode, describeCli(r)).toBe(3);
    expect(r.stderr.trim().split('\n')).toEqual([
      "error: install transparent-proxy: tpctl's nftables table is installed (inet tpctl) " +
        '(the two engines cannot run together: run `tpctl uninstall transparent-proxy` first, then install again)',
    ]);
    expect(await engineState('nftables', sb)).toBe(before);
  });

  it('refuses eBPF over an nftables install, and nftables over an eBPF install', async () => {
    // The nftables install of the previous test is still there.
    let before = `${await engineState('ebpf', sb)}\n${await engineState('nftables', sb)}`;
    let r = await install('ebpf');
    expect(r.exitCode, describeCli(r)).toBe(3);
    expect(r.stderr).toContain("error: install transparent-proxy: tpctl's nftables table is installed (inet tpctl)");
    expect(`${await engineState('ebpf', sb)}\n${await engineState('nftables', sb)}`).toBe(before);
    await mustSucceed(['uninstall', 'transparent-proxy']);

    await mustSucceed(['install', 'transparent-proxy', ...conformanceFlags(sb), ...engineFlags('ebpf', sb)]);
    before = `${await engineState('ebpf', sb)}\n${await engineState('nftables', sb)}`;
    const cfg = join(sb.tmpDir, 'bpffs-nft.yaml');
    writeFileSync(cfg, `ebpf:\n  bpffsPath: ${sb.bpffsPath}\n`);
    r = await cli(['install', 'transparent-proxy', ...conformanceFlags(sb), '--config', cfg, '--engine', 'nftables']);
    expect(r.exitCode, describeCli(r)).toBe(3);
    expect(r.stderr).toContain(`error: install transparent-proxy: an eBPF transparent proxy is installed (state in ${sb.bpffsPath})`);
    expect(`${await engineState('ebpf', sb)}\n${await engineState('nftables', sb)}`).toBe(before);
    await mustSucceed(['uninstall', 'transparent-proxy', ...uninstallFlags('ebpf', sb)]);
  });
});
