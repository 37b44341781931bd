/**
 * The conformance suite: every row of ARCHITECTURE.md's behaviour table, for IPv4
 * and IPv6, against real traffic in a sandbox, once per engine — through the real
 * CLI run inside the sandbox's mesh host. Also --redirect-all-dns-traffic, --redirect-dns=false,
 * --ip-family-mode ipv4 and --redirect-inbound=false, and the lifecycle promises:
 * --dry-run changes nothing, a failed install (TPCTL_FAIL_AT) changes nothing, a
 * second install changes nothing, a reinstall keeps open connections, uninstall
 * restores the host exactly (foreign iptables rules / a foreign cgroup program stay).
 *
 * Requires root and a built tree (npx tsc -p tsconfig.json). Tests skip only when
 * the engine reports that the kernel is too old.
 */
import { afterAll, beforeAll, describe, expect, it, type TestContext } from 'vitest';
import {
  APP_PORTS, APP_UID, CLIENT_HOSTS, OTHER_UID, PORTS, PROXY_UID, REMOTE_PORTS,
  addForeignIptablesRules, addForeignNftTables, attachForeignCgroupProgram, conformanceFlags, describeCli, ebpfState, engineFlags, engineState, holdTcp,
  ip, isKernelTooOld, loopback, meshIp, probeDns, probeTcp, probeUdp, runCli, selectEngines, uninstallFlags,
  type DnsProbeResult, type EngineName, type Family, type HeldConnection, type ProbeFrom,
} from '../../src/sandbox/harness.js';
import type { Sandbox } from '../../src/sandbox/types.js';
import { hostPort, ipOf } from '../../src/sandbox/wire.js';
import { probeNetnsCheck } from '../../src/ebpf/netns-check.js';
import { SOCKOPS_PROGRAM } from '../../src/ebpf/spec.js';
import { expectDirect, expectProxied, noopInstallLines, useSandbox } from './suite.js';

const ENGINES: Array<{ engine: EngineName; short: string; failAt: string[] }> = selectEngines([
  { engine: 'iptables-nft', short: 'nft', failAt: ['after-ipv4'] },
  { engine: 'iptables-legacy', short: 'leg', failAt: ['after-ipv4'] },
  { engine: 'nftables', short: 'nfs', failAt: ['nft-transaction'] },
  { engine: 'ebpf', short: 'bpf', failAt: ['after-cgroup-attach', 'after-tc-attach'] },
]);
const FAMILIES: Family[] = [4, 6];

/**
 * What the CLI prints in the lifecycle tests, per engine. Every line is fixed except
 * nft's own error text (line numbers, carets), which is matched as one anchored line.
 */
function lifecycleOutput(engine: EngineName, sb: Sandbox) {
  const backend = engine === 'iptables-nft' ? 'nft' : 'legacy';
  switch (engine) {
    case 'ebpf': {
      // The sockops program is the one whose netns check this kernel supports (netns-check.ts).
      const sockops = SOCKOPS_PROGRAM[probeNetnsCheck()];
      const programs = ['connect', 'sendmsg', 'recvmsg', 'getpeername'].flatMap((p) => [`tp_${p}4`, `tp_${p}6`]).concat(sockops, 'tp_getsockopt', 'tp_setsockopt', 'tp_egress', 'tp_sk_lookup');
      return {
        failedInstall: (step: string): string | RegExp => `error: install failed: fault injected at ${step} (TPCTL_FAIL_AT); nothing was left behind\n`,
        failedReinstall: (step: string): string | RegExp => `error: install failed: fault injected at ${step} (TPCTL_FAIL_AT); the previous settings were kept\n`,
        dryRunLine: `attach tp_connect4 (cgroup/connect4) to cgroup ${sb.cgroupPath} with a pinned bpf_link`,
        uninstallDryRun: [
          `would detach ${programs.join(', ')} from cgroup ${sb.cgroupPath}`,
          `would remove the tc filter from ${sb.iface.mesh} ingress and its clsact qdisc`,
          `would remove the pins in ${sb.bpffsPath}`,
          'nftables: no tpctl table found, nothing to remove',
          'iptables: no tpctl rules found, nothing to remove',
        ],
        uninstall: [
          `detached ${programs.length} programs from cgroup ${sb.cgroupPath}`,
          `removed tc filter and its clsact qdisc from ${sb.iface.mesh}`,
          `removed pins from ${sb.bpffsPath}`,
          'nftables: no tpctl table found, nothing to remove',
          'iptables: no tpctl rules found, nothing to remove',
          'transparent proxy removed',
        ],
      };
    }
    case 'nftables': {
      const failed = /^error: install failed: nft -f -: .*tpctl_fault_injected_nft_transaction.*; nothing was changed \(nft applies the whole script or none of it\)\n$/;
      return {
        failedInstall: (): string | RegExp => failed,
        failedReinstall: (): string | RegExp => failed,
        dryRunLine: 'table inet tpctl {',
        uninstallDryRun: ['nftables: would remove inet tpctl', 'delete table inet tpctl', 'iptables: no tpctl rules found, nothing to remove'],
        uninstall: ['nftables: removed inet tpctl', 'iptables: no tpctl rules found, nothing to remove', 'transparent proxy removed'],
      };
    }
    default: {
      const restored = (step: string): string => `error: install failed: fault injected at ${step} (TPCTL_FAIL_AT); the host was restored to its previous rules\n`;
      return {
        failedInstall: restored,
        failedReinstall: restored,
        dryRunLine: '--append TPCTL_OUTPUT --protocol tcp --match comment --comment "tpctl/output: tcp to outbound" --jump TPCTL_OUTBOUND',
        uninstallDryRun: [
          'nftables: no tpctl table found, nothing to remove',
          `iptables (${backend}) ipv4: would remove 8 chains and their jump rules`,
        ],
        uninstall: [
          'nftables: no tpctl table found, nothing to remove',
          `iptables (${backend}) ipv4: removed 8 chains and their jump rules`,
          `iptables (${backend}) ipv6: removed 8 chains and their jump rules`,
          'transparent proxy removed',
        ],
      };
    }
  }
}

/** One line of stderr: equal to `want`, or matching it when it is a pattern. */
function expectLine(text: string, want: string | RegExp): void {
  if (typeof want === 'string') expect(text).toBe(want);
  else expect(text).toMatch(want);
}

const app = { host: 'mesh' as const, uid: APP_UID };
const otherApp = { host: 'mesh' as const, uid: OTHER_UID };
const proxyUser = { host: 'mesh' as const, uid: PROXY_UID };
const client = { host: 'client' as const };

/** A real DNS query over TCP went straight to `server`:53 and was answered there. */
function expectTcpDnsUntouched(r: DnsProbeResult, server: string, source: string): void {
  expect(r, JSON.stringify(r)).toMatchObject({ answer: 'dns', reply: { via: 'remote-dns', local: hostPort(server, 53) }, peername: hostPort(server, 53) });
  expect(ipOf(r.reply.peer ?? ''), `server saw peer ${r.reply.peer}`).toBe(source);
}

/** A real DNS query over UDP to `server`:53, answered by the DNS listener (`proxy`) or the server itself. */
async function expectUdpDns(sb: Sandbox, from: ProbeFrom, server: string, f: Family, lands: 'proxy' | 'server'): Promise<void> {
  for (const connected of [true, false]) {
    const r = await probeDns(sb, from, server, 'udp', connected);
    const local = lands === 'proxy' ? hostPort(loopback(f), PORTS.dns) : hostPort(server, 53);
    expect(r, JSON.stringify(r)).toMatchObject({ answer: 'dns', reply: { via: lands === 'proxy' ? 'proxy-dns' : 'remote-dns', local }, from: hostPort(server, 53) });
    if (connected) expect(r.peername).toBe(hostPort(server, 53));
  }
}

/** Envoy's inbound passthrough cluster binds this source (Kuma's iptables rules let it through). */
const passthroughSource = (f: Family): string => (f === 4 ? '127.0.0.6' : '::6');

for (const { engine, short, failAt } of ENGINES) {
  describe(`conformance: ${engine}`, () => {
    describe('behaviour table (--redirect-dns)', () => {
      const s = useSandbox(`tpe2e-${short}-b-${process.pid}`, engine, (sb) => conformanceFlags(sb));

      for (const f of FAMILIES) {
        const remote = (): string => ip(s.sb, f, CLIENT_HOSTS.remote);

        it(`IPv${f}: app → remote ip:port lands on the outbound listener with SO_ORIGINAL_DST = ip:port and the instance IP as source`, async (t) => {
          s.skipIfTooOld(t);
          const r = await probeTcp(s.sb, app, remote(), REMOTE_PORTS.plain);
          expectProxied(r, 'outbound', hostPort(remote(), REMOTE_PORTS.plain), meshIp(s.sb, f));
          expect(r.reply.origDstFrom).toBe('getsockopt');
        });

        it(`IPv${f}: app's getpeername() still says the original ip:port`, async (t) => {
          s.skipIfTooOld(t);
          const r = await probeTcp(s.sb, app, remote(), REMOTE_PORTS.plain);
          expect(r.reply.via).toBe('proxy');
          expect(r.peername).toBe(hostPort(remote(), REMOTE_PORTS.plain));
        });

        it(`IPv${f}: proxy uid → remote is untouched`, async (t) => {
          s.skipIfTooOld(t);
          const r = await probeTcp(s.sb, proxyUser, remote(), REMOTE_PORTS.plain);
          expectDirect(r, 'remote', hostPort(remote(), REMOTE_PORTS.plain));
          expect(ipOf(r.reply.peer ?? '')).toBe(meshIp(s.sb, f));
        });

        it(`IPv${f}: app → ${loopback(f)} is untouched`, async (t) => {
          s.skipIfTooOld(t);
          const r = await probeTcp(s.sb, app, loopback(f), APP_PORTS.plain);
          expectDirect(r, 'app', hostPort(loopback(f), APP_PORTS.plain));
        });

        it(`IPv${f}: excluded outbound port is untouched`, async (t) => {
          s.skipIfTooOld(t);
          const r = await probeTcp(s.sb, app, remote(), REMOTE_PORTS.excluded);
          expectDirect(r, 'remote', hostPort(remote(), REMOTE_PORTS.excluded));
        });

        it(`IPv${f}: excluded outbound IP is untouched`, async (t) => {
          s.skipIfTooOld(t);
          const excluded = ip(s.sb, f, CLIENT_HOSTS.excludedOutboundIp);
          const r = await probeTcp(s.sb, app, excluded, REMOTE_PORTS.plain);
          expectDirect(r, 'remote', hostPort(excluded, REMOTE_PORTS.plain));
        });

        it(`IPv${f}: per-uid port exclusion leaves that uid untouched and still redirects other uids`, async (t) => {
          s.skipIfTooOld(t);
          const mine = await probeTcp(s.sb, app, remote(), REMOTE_PORTS.uidExcluded);
          expectDirect(mine, 'remote', hostPort(remote(), REMOTE_PORTS.uidExcluded));
          const other = await probeTcp(s.sb, otherApp, remote(), REMOTE_PORTS.uidExcluded);
          expectProxied(other, 'outbound', hostPort(remote(), REMOTE_PORTS.uidExcluded), meshIp(s.sb, f));
        });

        it(`IPv${f}: client → instance ip:port lands on the inbound listener with the original destination and the client's source IP`, async (t) => {
          s.skipIfTooOld(t);
          const r = await probeTcp(s.sb, client, meshIp(s.sb, f), APP_PORTS.plain, remote());
          expectProxied(r, 'inbound', hostPort(meshIp(s.sb, f), APP_PORTS.plain), remote());
        });

        it(`IPv${f}: on an inbound connection the proxy gets the original destination from SO_ORIGINAL_DST too`, async (t) => {
          s.skipIfTooOld(t);
          const r = await probeTcp(s.sb, client, meshIp(s.sb, f), APP_PORTS.plain, remote());
          expect(r.reply, JSON.stringify(r)).toMatchObject({ via: 'proxy', listener: 'inbound', origDstFrom: 'getsockopt' });
        });

        it(`IPv${f}: excluded inbound port reaches the app`, async (t) => {
          s.skipIfTooOld(t);
          const r = await probeTcp(s.sb, client, meshIp(s.sb, f), APP_PORTS.excluded, remote());
          expectDirect(r, 'app', hostPort(meshIp(s.sb, f), APP_PORTS.excluded));
          expect(ipOf(r.reply.peer ?? '')).toBe(remote());
        });

        it(`IPv${f}: excluded inbound source IP reaches the app`, async (t) => {
          s.skipIfTooOld(t);
          const source = ip(s.sb, f, CLIENT_HOSTS.excludedInboundSource);
          const r = await probeTcp(s.sb, client, meshIp(s.sb, f), APP_PORTS.plain, source);
          expectDirect(r, 'app', hostPort(meshIp(s.sb, f), APP_PORTS.plain));
          expect(ipOf(r.reply.peer ?? '')).toBe(source);
        });

        it(`IPv${f}: proxy → its own instance ip:app port lands on the inbound listener with origDst = instance ip:app port`, async (t) => {
          s.skipIfTooOld(t);
          const own = hostPort(meshIp(s.sb, f), APP_PORTS.plain);
          const r = await probeTcp(s.sb, proxyUser, meshIp(s.sb, f), APP_PORTS.plain);
          expectProxied(r, 'inbound', own, meshIp(s.sb, f));
          expect(r.reply.origDstFrom).toBe('getsockopt');
          // REDIRECT's target: the listener at loopback.
          expect(r.reply.local).toBe(hostPort(loopback(f), PORTS.inbound));
          // What the proxy's own socket says: the address it dialled, from the instance IP.
          expect(r.peername).toBe(own);
          expect(ipOf(r.sockname)).toBe(meshIp(s.sb, f));
        });

        it(`IPv${f}: proxy → its own instance ip on an excluded inbound port still lands on the inbound listener (Kuma's INBOUND_REDIRECT has no exclusions)`, async (t) => {
          s.skipIfTooOld(t);
          const own = hostPort(meshIp(s.sb, f), APP_PORTS.excluded);
          const r = await probeTcp(s.sb, proxyUser, meshIp(s.sb, f), APP_PORTS.excluded);
          expectProxied(r, 'inbound', own, meshIp(s.sb, f));
          expect(r.peername).toBe(own);
        });

        it(`IPv${f}: proxy → its own instance ip:inbound port is redirected to the listener at ${loopback(f)} like any other port`, async (t) => {
          s.skipIfTooOld(t);
          const own = hostPort(meshIp(s.sb, f), PORTS.inbound);
          const r = await probeTcp(s.sb, proxyUser, meshIp(s.sb, f), PORTS.inbound);
          expectProxied(r, 'inbound', own, meshIp(s.sb, f));
          expect(r.reply.local).toBe(hostPort(loopback(f), PORTS.inbound));
        });

        if (f === 4) {
          it(`IPv4: proxy → 127.0.0.2:app port lands on the inbound listener too (Kuma's rule spares only 127.0.0.1), from 127.0.0.1`, async (t) => {
            s.skipIfTooOld(t);
            const r = await probeTcp(s.sb, proxyUser, '127.0.0.2', APP_PORTS.plain);
            expectProxied(r, 'inbound', hostPort('127.0.0.2', APP_PORTS.plain), '127.0.0.1');
            expect(r.peername).toBe(hostPort('127.0.0.2', APP_PORTS.plain));
          });
        }

        it(`IPv${f}: a proxy connection bound to ${passthroughSource(f)} (inbound passthrough) reaches the app directly`, async (t) => {
          s.skipIfTooOld(t);
          const r = await probeTcp(s.sb, proxyUser, meshIp(s.sb, f), APP_PORTS.plain, passthroughSource(f));
          expectDirect(r, 'app', hostPort(meshIp(s.sb, f), APP_PORTS.plain));
          expect(ipOf(r.reply.peer ?? '')).toBe(passthroughSource(f));
        });

        it(`IPv${f}: app → its own instance ip:port reaches the app directly`, async (t) => {
          s.skipIfTooOld(t);
          const r = await probeTcp(s.sb, app, meshIp(s.sb, f), APP_PORTS.plain);
          expectDirect(r, 'app', hostPort(meshIp(s.sb, f), APP_PORTS.plain));
          expect(ipOf(r.reply.peer ?? '')).toBe(meshIp(s.sb, f));
        });

        for (const connected of [true, false]) {
          const kind = connected ? 'connected' : 'unconnected';
          it(`IPv${f}: DNS to a resolv.conf server (${kind} UDP) lands on the DNS listener; the reply comes from the server`, async (t) => {
            s.skipIfTooOld(t);
            const r = await probeUdp(s.sb, app, remote(), 53, connected);
            expect(r.reply, JSON.stringify(r)).toMatchObject({ via: 'proxy-dns', local: hostPort(loopback(f), PORTS.dns) });
            expect(r.from).toBe(hostPort(remote(), 53));
            if (connected) expect(r.peername).toBe(hostPort(remote(), 53));
          });

          it(`IPv${f}: DNS to a server not in resolv.conf (${kind} UDP) is untouched under --redirect-dns`, async (t) => {
            s.skipIfTooOld(t);
            const unlisted = ip(s.sb, f, CLIENT_HOSTS.unlistedDns);
            const r = await probeUdp(s.sb, app, unlisted, 53, connected);
            expect(r.reply, JSON.stringify(r)).toMatchObject({ via: 'remote-dns', local: hostPort(unlisted, 53) });
            expect(r.from).toBe(hostPort(unlisted, 53));
          });
        }

        it(`IPv${f}: per-uid UDP exclusion (udp:53:uid) leaves that uid's DNS untouched`, async (t) => {
          s.skipIfTooOld(t);
          for (const connected of [true, false]) {
            const r = await probeUdp(s.sb, otherApp, remote(), 53, connected);
            expect(r.reply, JSON.stringify(r)).toMatchObject({ via: 'remote-dns', local: hostPort(remote(), 53) });
          }
        });

        it(`IPv${f}: the proxy's own DNS is untouched`, async (t) => {
          s.skipIfTooOld(t);
          for (const connected of [true, false]) {
            const r = await probeUdp(s.sb, proxyUser, remote(), 53, connected);
            expect(r.reply, JSON.stringify(r)).toMatchObject({ via: 'remote-dns', local: hostPort(remote(), 53) });
          }
        });

        // Kuma since kumahq/kuma#14557 and #15401: DNS over TCP goes to the server itself.
        it(`IPv${f}: a DNS query over TCP to the resolv.conf server is answered by the server (not the DNS or outbound listener); over UDP by the DNS listener`, async (t) => {
          s.skipIfTooOld(t);
          expectTcpDnsUntouched(await probeDns(s.sb, app, remote(), 'tcp'), remote(), meshIp(s.sb, f));
          await expectUdpDns(s.sb, app, remote(), f, 'proxy');
        });

        it(`IPv${f}: proxy → its own instance ip:53 over TCP lands on the inbound listener like any other port (Kuma #16138 dropped the port-53 exception)`, async (t) => {
          s.skipIfTooOld(t);
          const r = await probeTcp(s.sb, proxyUser, meshIp(s.sb, f), 53);
          expectProxied(r, 'inbound', hostPort(meshIp(s.sb, f), 53), meshIp(s.sb, f));
          expect(r.reply.local).toBe(hostPort(loopback(f), PORTS.inbound));
        });

        it(`IPv${f}: a DNS query over TCP to a server not in resolv.conf is answered by that server`, async (t) => {
          s.skipIfTooOld(t);
          const unlisted = ip(s.sb, f, CLIENT_HOSTS.unlistedDns);
          expectTcpDnsUntouched(await probeDns(s.sb, app, unlisted, 'tcp'), unlisted, meshIp(s.sb, f));
        });

        it(`IPv${f}: the proxy's own DNS queries over TCP and UDP are answered by the server`, async (t) => {
          s.skipIfTooOld(t);
          expectTcpDnsUntouched(await probeDns(s.sb, proxyUser, remote(), 'tcp'), remote(), meshIp(s.sb, f));
          await expectUdpDns(s.sb, proxyUser, remote(), f, 'server');
        });
      }
    });

    describe('--redirect-all-dns-traffic', () => {
      const s = useSandbox(`tpe2e-${short}-d-${process.pid}`, engine, (sb) => conformanceFlags(sb, { dns: 'all' }));

      for (const f of FAMILIES) {
        for (const connected of [true, false]) {
          const kind = connected ? 'connected' : 'unconnected';
          it(`IPv${f}: DNS to a server not in resolv.conf (${kind} UDP) is captured; the reply comes from that server`, async (t) => {
            s.skipIfTooOld(t);
            const unlisted = ip(s.sb, f, CLIENT_HOSTS.unlistedDns);
            const r = await probeUdp(s.sb, app, unlisted, 53, connected);
            expect(r.reply, JSON.stringify(r)).toMatchObject({ via: 'proxy-dns' });
            expect(r.from).toBe(hostPort(unlisted, 53));
            if (connected) expect(r.peername).toBe(hostPort(unlisted, 53));
          });
        }

        it(`IPv${f}: the proxy's own DNS is untouched`, async (t) => {
          s.skipIfTooOld(t);
          const unlisted = ip(s.sb, f, CLIENT_HOSTS.unlistedDns);
          for (const connected of [true, false]) {
            const r = await probeUdp(s.sb, proxyUser, unlisted, 53, connected);
            expect(r.reply, JSON.stringify(r)).toMatchObject({ via: 'remote-dns', local: hostPort(unlisted, 53) });
          }
        });

        it(`IPv${f}: a DNS query over TCP is answered by the server it was sent to, from the app and from the proxy; over UDP by the DNS listener`, async (t) => {
          s.skipIfTooOld(t);
          const unlisted = ip(s.sb, f, CLIENT_HOSTS.unlistedDns);
          expectTcpDnsUntouched(await probeDns(s.sb, app, unlisted, 'tcp'), unlisted, meshIp(s.sb, f));
          expectTcpDnsUntouched(await probeDns(s.sb, proxyUser, unlisted, 'tcp'), unlisted, meshIp(s.sb, f));
          await expectUdpDns(s.sb, app, unlisted, f, 'proxy');
        });
      }
    });

    describe('--redirect-dns=false', () => {
      const s = useSandbox(`tpe2e-${short}-n-${process.pid}`, engine, (sb) => conformanceFlags(sb, { dns: 'off' }));

      for (const f of FAMILIES) {
        const remote = (): string => ip(s.sb, f, CLIENT_HOSTS.remote);

        it(`IPv${f}: an app's DNS query over TCP is ordinary TCP: it lands on the outbound listener with SO_ORIGINAL_DST = server:53`, async (t) => {
          s.skipIfTooOld(t);
          const r = await probeDns(s.sb, app, remote(), 'tcp');
          expect(r.answer, JSON.stringify(r)).toBe('greeting');
          expectProxied(r, 'outbound', hostPort(remote(), 53), meshIp(s.sb, f));
          expect(r.peername).toBe(hostPort(remote(), 53));
        });

        it(`IPv${f}: an app's DNS query over UDP is answered by the server`, async (t) => {
          s.skipIfTooOld(t);
          await expectUdpDns(s.sb, app, remote(), f, 'server');
        });

        it(`IPv${f}: the proxy's own DNS queries over TCP and UDP are answered by the server`, async (t) => {
          s.skipIfTooOld(t);
          expectTcpDnsUntouched(await probeDns(s.sb, proxyUser, remote(), 'tcp'), remote(), meshIp(s.sb, f));
          await expectUdpDns(s.sb, proxyUser, remote(), f, 'server');
        });
      }
    });

    describe('--ip-family-mode ipv4', () => {
      const s = useSandbox(`tpe2e-${short}-4-${process.pid}`, engine, (sb) => [...conformanceFlags(sb), '--ip-family-mode', 'ipv4']);

      it('IPv4 is redirected (outbound, inbound, DNS)', async (t) => {
        s.skipIfTooOld(t);
        const remote = s.sb.ipv4.client;
        expectProxied(await probeTcp(s.sb, app, remote, REMOTE_PORTS.plain), 'outbound', hostPort(remote, REMOTE_PORTS.plain), s.sb.ipv4.mesh);
        expectProxied(await probeTcp(s.sb, client, s.sb.ipv4.mesh, APP_PORTS.plain, remote), 'inbound', hostPort(s.sb.ipv4.mesh, APP_PORTS.plain), remote);
        expect((await probeUdp(s.sb, app, remote, 53, false)).reply.via).toBe('proxy-dns');
      });

      it('IPv6 is left alone (outbound, inbound, DNS)', async (t) => {
        s.skipIfTooOld(t);
        const remote = s.sb.ipv6.client;
        expectDirect(await probeTcp(s.sb, app, remote, REMOTE_PORTS.plain), 'remote', hostPort(remote, REMOTE_PORTS.plain));
        expectDirect(await probeTcp(s.sb, client, s.sb.ipv6.mesh, APP_PORTS.plain, remote), 'app', hostPort(s.sb.ipv6.mesh, APP_PORTS.plain));
        expectDirect(await probeTcp(s.sb, proxyUser, s.sb.ipv6.mesh, APP_PORTS.plain), 'app', hostPort(s.sb.ipv6.mesh, APP_PORTS.plain));
        for (const connected of [true, false]) {
          const r = await probeUdp(s.sb, app, remote, 53, connected);
          expect(r.reply, JSON.stringify(r)).toMatchObject({ via: 'remote-dns', local: hostPort(remote, 53) });
        }
      });
    });

    describe('--redirect-inbound=false', () => {
      const s = useSandbox(`tpe2e-${short}-o-${process.pid}`, engine, (sb) => [...conformanceFlags(sb), '--redirect-inbound=false']);

      for (const f of FAMILIES) {
        it(`IPv${f}: inbound reaches the app, outbound is still redirected`, async (t) => {
          s.skipIfTooOld(t);
          const remote = ip(s.sb, f, CLIENT_HOSTS.remote);
          const inbound = await probeTcp(s.sb, client, meshIp(s.sb, f), APP_PORTS.plain, remote);
          expectDirect(inbound, 'app', hostPort(meshIp(s.sb, f), APP_PORTS.plain));
          expect(ipOf(inbound.reply.peer ?? '')).toBe(remote);
          const outbound = await probeTcp(s.sb, app, remote, REMOTE_PORTS.plain);
          expectProxied(outbound, 'outbound', hostPort(remote, REMOTE_PORTS.plain), meshIp(s.sb, f));
        });

        it(`IPv${f}: proxy → its own instance ip:app port reaches the app (no inbound redirect to go to)`, async (t) => {
          s.skipIfTooOld(t);
          const r = await probeTcp(s.sb, proxyUser, meshIp(s.sb, f), APP_PORTS.plain);
          expectDirect(r, 'app', hostPort(meshIp(s.sb, f), APP_PORTS.plain));
          expect(ipOf(r.reply.peer ?? '')).toBe(meshIp(s.sb, f));
        });
      }
    });

    describe('lifecycle', () => {
      const s = useSandbox(`tpe2e-${short}-l-${process.pid}`, engine, undefined);
      const install = (extra: number[] = [], env: Record<string, string> = {}) =>
        runCli(s.sb, ['install', 'transparent-proxy', ...conformanceFlags(s.sb, { extraExcludedOutboundPorts: extra }), ...engineFlags(engine, s.sb)], env);
      const uninstall = () => runCli(s.sb, ['uninstall', 'transparent-proxy', ...uninstallFlags(engine, s.sb)]);
      let before = '';
      let installed = '';
      let tooOld: string | undefined;
      const skipIfTooOld = (t: TestContext): void => {
        if (tooOld) t.skip(`kernel too old: ${tooOld}`);
      };

      beforeAll(async () => {
        if (engine === 'ebpf') await attachForeignCgroupProgram(s.sb);
        else if (engine === 'nftables') await addForeignNftTables(s.sb);
        else await addForeignIptablesRules(s.sb, engine === 'iptables-nft' ? 'nft' : 'legacy');
        before = await engineState(engine, s.sb);
      });
      afterAll(async () => {
        // Whatever a failed test left installed goes before the sandbox does.
        if (installed && s.sb) await uninstall().catch(() => undefined);
      });

      it('install --dry-run prints the plan (the engine\'s rules or attachments) and changes nothing', async (t) => {
        const r = await runCli(s.sb, ['install', 'transparent-proxy', '--dry-run', ...conformanceFlags(s.sb), ...engineFlags(engine, s.sb)]);
        if (isKernelTooOld(r)) t.skip(`kernel too old: ${r.stderr.trim()}`);
        expect(r.exitCode, describeCli(r)).toBe(0);
        expect(r.stdout.split('\n'), r.stdout).toContain(lifecycleOutput(engine, s.sb).dryRunLine);
        expect(await engineState(engine, s.sb)).toBe(before);
      });

      for (const step of failAt) {
        it(`a failed install (TPCTL_FAIL_AT=${step}) exits non-zero and leaves the host as it was`, async (t) => {
          const r = await install([], { TPCTL_FAIL_AT: step });
          if (isKernelTooOld(r)) {
            tooOld = r.stderr.trim();
            skipIfTooOld(t);
          }
          expect(r.exitCode, describeCli(r)).not.toBe(0);
          expect(r.stdout).toBe('');
          expectLine(r.stderr, lifecycleOutput(engine, s.sb).failedInstall(step));
          expect(await engineState(engine, s.sb)).toBe(before);
        });
      }

      it('install exits 0, changes the host and redirects', async (t) => {
        skipIfTooOld(t);
        const r = await install();
        if (isKernelTooOld(r)) {
          tooOld = r.stderr.trim();
          skipIfTooOld(t);
        }
        expect(r.exitCode, describeCli(r)).toBe(0);
        installed = await engineState(engine, s.sb);
        expect(installed).not.toBe(before);
        if (engine === 'ebpf') expect((await ebpfState(s.sb)).cgroupPrograms, 'tpctl attached next to the foreign program').toMatch(/foreign_conn4[\s\S]*tp_connect4|tp_connect4[\s\S]*foreign_conn4/);
        const remote = s.sb.ipv4.client;
        expectProxied(await probeTcp(s.sb, app, remote, REMOTE_PORTS.plain), 'outbound', hostPort(remote, REMOTE_PORTS.plain), s.sb.ipv4.mesh);
      });

      it('a second install with the same settings says exactly that nothing changed, and changes nothing', async (t) => {
        skipIfTooOld(t);
        const r = await install();
        expect(r.exitCode, describeCli(r)).toBe(0);
        expect(r.stdout).toBe(`${noopInstallLines(engine).join('\n')}\n`);
        expect(r.stderr).toBe('');
        expect(await engineState(engine, s.sb)).toBe(installed);
      });

      for (const step of failAt) {
        it(`a failed reinstall with new settings (TPCTL_FAIL_AT=${step}) exits non-zero and keeps the previous install`, async (t) => {
          skipIfTooOld(t);
          const r = await install([REMOTE_PORTS.laterExcluded], { TPCTL_FAIL_AT: step });
          expect(r.exitCode, describeCli(r)).not.toBe(0);
          expect(r.stdout).toBe('');
          expectLine(r.stderr, lifecycleOutput(engine, s.sb).failedReinstall(step));
          expect(await engineState(engine, s.sb)).toBe(installed);
          const remote = s.sb.ipv4.client;
          const still = await probeTcp(s.sb, app, remote, REMOTE_PORTS.laterExcluded);
          expectProxied(still, 'outbound', hostPort(remote, REMOTE_PORTS.laterExcluded), s.sb.ipv4.mesh);
        });
      }

      it('an open connection survives a reinstall with an extra excluded port, which applies to new connections', async (t) => {
        skipIfTooOld(t);
        const sb = s.sb;
        const laterExcluded = (f: Family): string => hostPort(ip(sb, f, CLIENT_HOSTS.remote), REMOTE_PORTS.laterExcluded);
        for (const f of FAMILIES) {
          const r = await probeTcp(sb, app, ip(sb, f, CLIENT_HOSTS.remote), REMOTE_PORTS.laterExcluded);
          expectProxied(r, 'outbound', laterExcluded(f), meshIp(sb, f));
        }
        const held: Array<{ what: string; conn: HeldConnection }> = [];
        try {
          for (const f of FAMILIES) {
            const out = await holdTcp(sb, app, ip(sb, f, CLIENT_HOSTS.remote), REMOTE_PORTS.plain);
            expect(out.first.reply).toMatchObject({ via: 'proxy', listener: 'outbound' });
            held.push({ what: `IPv${f} outbound`, conn: out });
            const inb = await holdTcp(sb, client, meshIp(sb, f), APP_PORTS.plain, ip(sb, f, CLIENT_HOSTS.remote));
            expect(inb.first.reply).toMatchObject({ via: 'proxy', listener: 'inbound' });
            held.push({ what: `IPv${f} inbound`, conn: inb });
          }
          for (const h of held) await h.conn.echo(`before ${h.what}`);

          const r = await install([REMOTE_PORTS.laterExcluded]);
          expect(r.exitCode, describeCli(r)).toBe(0);
          installed = await engineState(engine, s.sb);

          for (const h of held) {
            await expect(h.conn.echo(`after ${h.what}`), `${h.what} connection after reinstall`).resolves.toBeUndefined();
          }
          for (const f of FAMILIES) {
            const now = await probeTcp(sb, app, ip(sb, f, CLIENT_HOSTS.remote), REMOTE_PORTS.laterExcluded);
            expectDirect(now, 'remote', laterExcluded(f));
            const still = await probeTcp(sb, app, ip(sb, f, CLIENT_HOSTS.remote), REMOTE_PORTS.plain);
            expectProxied(still, 'outbound', hostPort(ip(sb, f, CLIENT_HOSTS.remote), REMOTE_PORTS.plain), meshIp(sb, f));
          }
        } finally {
          for (const h of held) await h.conn.close();
        }
      });

      it('uninstall --dry-run says what it would remove and changes nothing', async (t) => {
        skipIfTooOld(t);
        const r = await runCli(s.sb, ['uninstall', 'transparent-proxy', '--dry-run', ...uninstallFlags(engine, s.sb)]);
        expect(r.exitCode, describeCli(r)).toBe(0);
        const lines = r.stdout.split('\n');
        for (const want of lifecycleOutput(engine, s.sb).uninstallDryRun) expect(lines, r.stdout).toContain(want);
        expect(await engineState(engine, s.sb)).toBe(installed);
      });

      it('uninstall exits 0 and restores the host exactly', async (t) => {
        skipIfTooOld(t);
        const r = await uninstall();
        expect(r.exitCode, describeCli(r)).toBe(0);
        expect(r.stdout).toBe(`${lifecycleOutput(engine, s.sb).uninstall.join('\n')}\n`);
        if (engine === 'ebpf') {
          const state = await ebpfState(s.sb);
          expect(state.cgroupPrograms).not.toMatch(/tp_/);
          expect(state.cgroupPrograms, 'the foreign program stays attached').toMatch(/foreign_conn4/);
          expect(state.tcFilters).toBe('');
          expect(state.pins, 'no pin is left').toEqual([]);
        }
        expect(await engineState(engine, s.sb)).toBe(before);
        installed = '';
        for (const f of FAMILIES) {
          const remote = ip(s.sb, f, CLIENT_HOSTS.remote);
          expectDirect(await probeTcp(s.sb, app, remote, REMOTE_PORTS.plain), 'remote', hostPort(remote, REMOTE_PORTS.plain));
          expectDirect(await probeTcp(s.sb, client, meshIp(s.sb, f), APP_PORTS.plain, remote), 'app', hostPort(meshIp(s.sb, f), APP_PORTS.plain));
          const dns = await probeUdp(s.sb, app, remote, 53, true);
          expect(dns.reply.via).toBe('remote-dns');
        }
      });

      it('a second uninstall succeeds and changes nothing', async (t) => {
        skipIfTooOld(t);
        const r = await uninstall();
        expect(r.exitCode, describeCli(r)).toBe(0);
        expect(await engineState(engine, s.sb)).toBe(before);
      });
    });
  });
}
