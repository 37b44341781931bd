/**
 * Choosing the engine: --engine, the `engine` config key, TPCTL_ENGINE, kumactl's
 * --ebpf-enabled, and the default (iptables, or nftables on a host with nft and no
 * iptables binary, found through an injected lookup).
 */
import { describe, expect, it } from 'vitest';
import { install } from '../../src/commands/install.js';
import { parseConfigText } from '../../src/config/load.js';
import { resolveConfig, resolveUninstallConfig, type HostLookups, type ResolveInput } from '../../src/config/resolve.js';
import { errorLine } from '../fixtures/errors.js';
import { staticUserLookup } from '../../src/host/users.js';

function host(executables?: string[]): HostLookups {
  return {
    users: staticUserLookup([{ name: 'kuma-dp', uid: 5678 }]),
    readResolvConf: () => 'nameserver 10.0.0.53\n',
    ...(executables ? { hasExecutable: (name: string) => executables.includes(name) } : {}),
  };
}

const DEBIAN = ['iptables', 'iptables-nft-restore', 'iptables-legacy-restore', 'nft'];
const engineOf = (input: ResolveInput, h = host(DEBIAN)) => resolveConfig(input, h).config.engine;


describe('engine selection', () => {
  it('defaults to iptables, also without a lookup', () => {
    expect(engineOf({})).toBe('iptables');
    expect(engineOf({}, host())).toBe('iptables');
    expect(resolveConfig({}, host(DEBIAN)).notes).toEqual([]);
  });

  it('a host with nft and no iptables binary gets nftables, and a note saying so', () => {
    const r = resolveConfig({}, host(['nft']));
    expect(r.config.engine).toBe('nftables');
    expect(r.config.ebpf.enabled).toBe(false);
    expect(r.notes).toEqual(['engine: nftables (this host has nft but no iptables binary; choose with --engine)']);
  });

  it('without nft either, the default stays iptables (whose preflight names what is missing)', () => {
    expect(engineOf({}, host([]))).toBe('iptables');
    expect(engineOf({}, host(['nft', 'iptables-legacy-restore']))).toBe('iptables');
  });

  it('--engine, the config key and TPCTL_ENGINE; flags win over the environment, which wins over files', () => {
    const file = parseConfigText('tp.yaml', 'engine: ebpf\nebpf:\n  instanceIP: 10.0.0.5\n');
    expect(engineOf({ flags: { engine: 'nftables' } })).toBe('nftables');
    expect(engineOf({ files: [parseConfigText('tp.yaml', 'engine: nftables\n')] })).toBe('nftables');
    expect(engineOf({ env: { TPCTL_ENGINE: 'nftables' } })).toBe('nftables');
    expect(engineOf({ files: [file], env: { TPCTL_ENGINE: 'nftables' } })).toBe('nftables');
    expect(engineOf({ files: [file], env: { TPCTL_ENGINE: 'nftables' }, flags: { engine: 'iptables' } })).toBe('iptables');
    expect(engineOf({ env: { TPCTL_ENGINE: '' } })).toBe('iptables');
    // An explicit choice is never second-guessed by the host lookup.
    expect(engineOf({ flags: { engine: 'iptables' } }, host(['nft']))).toBe('iptables');
  });

  it('--ebpf-enabled is --engine ebpf', () => {
    const a = resolveConfig({ flags: { ebpfEnabled: true, ebpfInstanceIp: '10.0.0.5' } }, host(DEBIAN)).config;
    const b = resolveConfig({ flags: { engine: 'ebpf', ebpfInstanceIp: '10.0.0.5' } }, host(DEBIAN)).config;
    expect(a).toEqual(b);
    expect(a.engine).toBe('ebpf');
    expect(a.ebpf.enabled).toBe(true);
    expect(engineOf({ flags: { engine: 'ebpf', ebpfEnabled: true, ebpfInstanceIp: '10.0.0.5' } })).toBe('ebpf');
    expect(engineOf({ flags: { engine: 'nftables', ebpfEnabled: 'false' } })).toBe('nftables');
  });

  it.each([
    ['--engine iptables --ebpf-enabled', { flags: { engine: 'iptables', ebpfEnabled: true } }, '--engine: iptables conflicts with --ebpf-enabled=true'],
    ['--engine ebpf --ebpf-enabled=false', { flags: { engine: 'ebpf', ebpfEnabled: 'false' } }, '--engine: ebpf conflicts with --ebpf-enabled=false'],
    [
      'TPCTL_ENGINE against a file',
      { env: { TPCTL_ENGINE: 'nftables' }, files: [parseConfigText('tp.yaml', 'ebpf:\n  enabled: true\n')] },
      'TPCTL_ENGINE: nftables conflicts with tp.yaml: ebpf.enabled=true',
    ],
  ] as Array<[string, ResolveInput, string]>)('conflicting choices are an error: %s', (_name, input, line) => {
    expect(errorLine(() => resolveConfig(input, host(DEBIAN)))).toBe(`${line} (--ebpf-enabled is kumactl's spelling of --engine ebpf: choose the engine once)`);
  });

  it('an unknown engine names the allowed ones', () => {
    expect(errorLine(() => resolveConfig({ flags: { engine: 'pf' } }, host(DEBIAN)))).toBe('--engine: "pf" is not allowed (expected iptables, nftables or ebpf)');
    expect(errorLine(() => resolveConfig({ env: { TPCTL_ENGINE: 'bpf' } }, host(DEBIAN)))).toBe('TPCTL_ENGINE: "bpf" is not allowed (expected iptables, nftables or ebpf)');
  });

  it('iptables-only settings are ignored with a warning under nftables', () => {
    const r = resolveConfig({ flags: { engine: 'nftables', storeFirewalld: true, iptablesBackend: 'legacy' } }, host(DEBIAN));
    expect(r.config.storeFirewalld).toBe(false);
    expect(r.warnings).toEqual(['--store-firewalld is ignored with the nftables engine', '--iptables-backend is ignored with the nftables engine']);
  });

  it('uninstall takes --engine too: --engine ebpf looks for the eBPF install like --ebpf-enabled', () => {
    expect(resolveUninstallConfig({ flags: { engine: 'ebpf' } }).config.ebpf.enabled).toBe(true);
    expect(resolveUninstallConfig({ flags: { engine: 'nftables' } }).config.ebpf.enabled).toBe(false);
  });

  it('a dry run on a host without iptables prints the nft script, the choice as its first comment', async () => {
    const r = await install({ dryRun: true, kumaDpUser: '5678' }, { host: host(['nft']) });
    expect(r.lines[0]).toBe('# engine: nftables (this host has nft but no iptables binary; choose with --engine)');
    expect(r.lines[1]).toMatch(/^# tpctl transparent proxy, nftables engine: ruleset [0-9a-f]{12} \((inet|split) layout\)$/);
    expect(r.lines).toContain('table inet tpctl {');
  });
});
