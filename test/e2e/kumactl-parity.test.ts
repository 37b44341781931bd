/**
 * kumactl parity on the real CLI, as root in a sandbox, with real traffic: a Kuma pod's
 * annotations file (--pod-annotations), a pasted kumactl 2.2 command line and
 * KUMA_TRANSPARENT_PROXY_* environment variables each install transparent proxying
 * that behaves as their settings say, and uninstall leaves the host as before.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  APP_PORTS, APP_UID, addForeignIptablesRules, addForeignNftTables, CLIENT_HOSTS, OTHER_UID, PROXY_UID, REMOTE_PORTS,
  describeCli, engineFlags, engineState, isKernelTooOld, probeTcp, runCli, selectEngines, uninstallFlags, type EngineName,
} from '../../src/sandbox/harness.js';
import type { Sandbox } from '../../src/sandbox/types.js';
import { useSandbox } from './suite.js';
import { hostPort } from '../../src/sandbox/wire.js';

const ENGINES = selectEngines<{ engine: EngineName }>([{ engine: 'iptables-nft' }, { engine: 'iptables-legacy' }, { engine: 'nftables' }, { engine: 'ebpf' }]);
const app = { host: 'mesh' as const, uid: APP_UID };
const otherApp = { host: 'mesh' as const, uid: OTHER_UID };
const client = { host: 'client' as const };

describe('kumactl parity on the real CLI (root, sandbox)', () => {
  const box = useSandbox(`tpe2e-i9a-${process.pid}`);
  const sb = (): Sandbox => box.sb;

  beforeAll(async () => {
    // Someone else's rules in every backend: legacy tables cannot be unregistered, so with a
    // table of someone else's in place, uninstall must restore the host exactly.
    await addForeignIptablesRules(sb(), 'nft');
    await addForeignIptablesRules(sb(), 'legacy');
    await addForeignNftTables(sb());
  }, 120_000);

  /** Installs with `args` (and `env`), runs `check`, uninstalls, and compares the host with before. */
  async function installed(engine: EngineName, args: string[], env: Record<string, string>, check: (stderr: string) => Promise<void>): Promise<'too old' | undefined> {
    const s = sb();
    const before = await engineState(engine, s);
    const r = await runCli(s, ['install', 'transparent-proxy', ...args], env);
    if (engine === 'ebpf' && isKernelTooOld(r)) return 'too old';
    expect(r.exitCode, describeCli(r)).toBe(0);
    try {
      await check(r.stderr);
    } finally {
      const u = await runCli(s, ['uninstall', 'transparent-proxy', ...uninstallFlags(engine, s)]);
      expect(u.exitCode, describeCli(u)).toBe(0);
    }
    expect(await engineState(engine, s)).toBe(before);
    return undefined;
  }

  const remote = (): string => sb().v4(CLIENT_HOSTS.remote);

  for (const { engine } of ENGINES) {
    it(`${engine}: a Kuma pod's annotations file sets the exclusions (--pod-annotations)`, async (t) => {
      const s = sb();
      const file = join(s.tmpDir, 'annotations');
      // As the kubelet writes it: sorted keys, Go-quoted values, no final newline.
      writeFileSync(
        file,
        [
          `kuma.io/application-probe-proxy-port="${APP_PORTS.excluded}"`,
          'kuma.io/mesh="default"',
          `kuma.io/sidecar-uid="${PROXY_UID}"`,
          'kuma.io/transparent-proxying-inbound-port="15006"',
          'kuma.io/transparent-proxying-outbound-port="15001"',
          'kubectl.kubernetes.io/last-applied-configuration="{\\"kind\\":\\"Pod\\"}\\n"',
          `traffic.kuma.io/exclude-outbound-ports="${REMOTE_PORTS.excluded}"`,
          `traffic.kuma.io/exclude-outbound-ports-for-uids="tcp:${REMOTE_PORTS.uidExcluded}:${APP_UID};udp:53:${OTHER_UID}"`,
        ].join('\n'),
      );
      const tooOld = await installed(engine, ['--pod-annotations', file, ...engineFlags(engine, s)], {}, async (stderr) => {
        expect(stderr).toBe('');
        const plain = await probeTcp(s, app, remote(), REMOTE_PORTS.plain);
        expect(plain.reply, 'app → remote is redirected').toMatchObject({ via: 'proxy', listener: 'outbound', origDst: hostPort(remote(), REMOTE_PORTS.plain) });
        const excluded = await probeTcp(s, app, remote(), REMOTE_PORTS.excluded);
        expect(excluded.reply, 'traffic.kuma.io/exclude-outbound-ports').toMatchObject({ via: 'remote' });
        const mine = await probeTcp(s, app, remote(), REMOTE_PORTS.uidExcluded);
        expect(mine.reply, 'traffic.kuma.io/exclude-outbound-ports-for-uids: this uid goes direct').toMatchObject({ via: 'remote' });
        const other = await probeTcp(s, otherApp, remote(), REMOTE_PORTS.uidExcluded);
        expect(other.reply, 'another uid is still redirected').toMatchObject({ via: 'proxy', listener: 'outbound' });
        const probePort = await probeTcp(s, client, s.ipv4.mesh, APP_PORTS.excluded, remote());
        expect(probePort.reply, 'kuma.io/application-probe-proxy-port is excluded inbound').toMatchObject({ via: 'app' });
        const inbound = await probeTcp(s, client, s.ipv4.mesh, APP_PORTS.plain, remote());
        expect(inbound.reply, 'other inbound ports go to the proxy').toMatchObject({ via: 'proxy', listener: 'inbound' });
      });
      if (tooOld) t.skip();
    });
  }

  it("iptables-nft: a Kuma gateway pod's annotations turn inbound redirection off", async () => {
    const s = sb();
    const file = join(s.tmpDir, 'gateway-annotations');
    writeFileSync(file, `kuma.io/gateway="enabled"\nkuma.io/sidecar-uid="${PROXY_UID}"`);
    await installed('iptables-nft', ['--pod-annotations', file, ...engineFlags('iptables-nft', s)], {}, async () => {
      const inbound = await probeTcp(s, client, s.ipv4.mesh, APP_PORTS.plain, remote());
      expect(inbound.reply).toMatchObject({ via: 'app' });
      const plain = await probeTcp(s, app, remote(), REMOTE_PORTS.plain);
      expect(plain.reply).toMatchObject({ via: 'proxy', listener: 'outbound' });
    });
  });

  for (const engine of ['iptables-nft', 'ebpf'] as const) {
    it(`${engine}: a pasted kumactl 2.2 command line works unchanged`, async (t) => {
      const s = sb();
      const args = [
        '--kuma-dp-user', String(PROXY_UID),
        '--redirect-outbound-port', '15001',
        '--redirect-inbound-port', '15006',
        '--redirect-inbound-port-v6', '15010',
        '--exclude-inbound-ports', String(APP_PORTS.excluded),
        '--exclude-outbound-ports', String(REMOTE_PORTS.excluded),
        '--exclude-outbound-tcp-ports-for-uids', `${REMOTE_PORTS.uidExcluded}:${APP_UID},${PROXY_UID}`,
        '--redirect-dns-upstream-target-chain', 'RETURN',
        '--kuma-cp-ip', '0.0.0.0',
        '--use-transparent-proxy-engine-v1=false',
        ...engineFlags(engine, s),
      ];
      const tooOld = await installed(engine, args, {}, async (stderr) => {
        expect(stderr.split('\n').filter(Boolean)).toEqual([
          'warning: --kuma-cp-ip is deprecated (kumactl 2.2) and has no effect',
          "warning: --redirect-dns-upstream-target-chain is deprecated; RETURN is what tpctl does (the proxy's own DNS queries are never redirected)",
          "warning: --redirect-inbound-port-v6 is kumactl 2.2's: IPv6 inbound connections go to the inbound port 15006, like IPv4 (15010 ignored)",
          "warning: --exclude-outbound-tcp-ports-for-uids is kumactl 2.2's; read as --exclude-outbound-ports-for-uids tcp:PORTS:UID",
        ]);
        const mine = await probeTcp(s, app, remote(), REMOTE_PORTS.uidExcluded);
        expect(mine.reply, 'the 2.2 per-protocol uid exclusion').toMatchObject({ via: 'remote' });
        const other = await probeTcp(s, otherApp, remote(), REMOTE_PORTS.uidExcluded);
        expect(other.reply).toMatchObject({ via: 'proxy', listener: 'outbound', origDst: hostPort(remote(), REMOTE_PORTS.uidExcluded) });
        const v6 = await probeTcp(s, client, s.ipv6.mesh, APP_PORTS.plain, s.v6(CLIENT_HOSTS.remote));
        expect(v6.reply, 'IPv6 inbound goes to the one inbound port').toMatchObject({ via: 'proxy', listener: 'inbound' });
      });
      if (tooOld) t.skip();
    });
  }

  it('iptables-legacy: KUMA_TRANSPARENT_PROXY_* variables alone configure the install; a bad one is refused untouched', async () => {
    const s = sb();
    const K = 'KUMA_TRANSPARENT_PROXY_';
    const env = {
      [`${K}KUMA_DP_USER`]: String(PROXY_UID),
      [`${K}REDIRECT_OUTBOUND_EXCLUDE_PORTS`]: String(REMOTE_PORTS.excluded),
      [`${K}REDIRECT_OUTBOUND_EXCLUDE_PORTS_FOR_UIDS`]: `tcp:${REMOTE_PORTS.uidExcluded}:${APP_UID}`,
      [`${K}REDIRECT_INBOUND_ENABLED`]: 'false',
      [`${K}IPTABLES_EXECUTABLES`]: 'iptables:/usr/sbin/iptables-legacy,iptables-save:/usr/sbin/iptables-legacy-save,iptables-restore:/usr/sbin/iptables-legacy-restore',
    };
    const before = await engineState('iptables-legacy', s);
    const bad = await runCli(s, ['install', 'transparent-proxy'], { ...env, [`${K}REDIRECT_INBOUND_PORT`]: '99999' });
    expect(bad.exitCode, describeCli(bad)).toBe(2);
    expect(bad.stderr).toBe(`error: ${K}REDIRECT_INBOUND_PORT: "99999" is out of range (expected an integer 1-65535)\n`);
    expect(await engineState('iptables-legacy', s)).toBe(before);
    await installed('iptables-legacy', [], env, async (stderr) => {
      expect(stderr).toBe(`warning: ${K}IPTABLES_EXECUTABLES: tpctl runs the legacy backend's tools from PATH (as --iptables-backend legacy)\n`);
      const excluded = await probeTcp(s, app, remote(), REMOTE_PORTS.excluded);
      expect(excluded.reply).toMatchObject({ via: 'remote' });
      const mine = await probeTcp(s, app, remote(), REMOTE_PORTS.uidExcluded);
      expect(mine.reply).toMatchObject({ via: 'remote' });
      const plain = await probeTcp(s, app, remote(), REMOTE_PORTS.plain);
      expect(plain.reply).toMatchObject({ via: 'proxy', listener: 'outbound' });
      const inbound = await probeTcp(s, client, s.ipv4.mesh, APP_PORTS.plain, remote());
      expect(inbound.reply, 'REDIRECT_INBOUND_ENABLED=false').toMatchObject({ via: 'app' });
    });
  });

  it('iptables-nft: a bad annotation is refused in one line naming file, line and annotation, host untouched', async () => {
    const s = sb();
    const file = join(s.tmpDir, 'bad-annotations');
    writeFileSync(file, `kuma.io/builtin-dns="enabled"\nkuma.io/builtin-dns-port="53x"\nkuma.io/sidecar-uid="${PROXY_UID}"`);
    const before = await engineState('iptables-nft', s);
    const r = await runCli(s, ['install', 'transparent-proxy', '--pod-annotations', file, ...engineFlags('iptables-nft', s)]);
    expect(r.exitCode, describeCli(r)).toBe(2);
    expect(r.stderr).toBe(`error: ${file}:2: kuma.io/builtin-dns-port: "53x" is not a port (expected an integer 1-65535)\n`);
    expect(await engineState('iptables-nft', s)).toBe(before);
  });
});
