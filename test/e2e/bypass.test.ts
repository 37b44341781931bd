/**
 * The bypass suite: every way around the proxy we know of, tried with real packets
 * against every engine, in the conformance sandbox. The client host is the attacker
 * for inbound (other local addresses of the mesh host, IPv6 extension headers, SYNs
 * in fragments, crafted by test/e2e/fixtures/bypass.py through AF_PACKET from a
 * spoofed client address); an app under an ordinary uid in the cgroup is the
 * attacker for outbound (routing headers, source routes, odd ways to connect).
 *
 * Every case asserts where the bytes went: to the proxy with the right original
 * destination, or nowhere with a clear refusal. "Nowhere" is checked on the wire for
 * routing headers: a sniffer on the client host counts packets that arrive with one.
 *
 * Add an engine by adding an entry to ENGINES (engineFlags/uninstallFlags in
 * src/sandbox/harness.ts must know it). Requires root, python3 and a built tree.
 */
import { existsSync, mkdirSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it, type TestContext } from 'vitest';
import {
  APP_PORTS, APP_UID, CLIENT_HOSTS, PORTS, PROXY_UID, REMOTE_PORTS,
  conformanceFlags, describeCli, engineFlags, ip, isKernelTooOld, meshIp, meshLinkLocal, probeTcp, runCli, selectEngines, startProxy, uninstallFlags,
  type EngineName, type Family, type Greeting,
} from '../../src/sandbox/harness.js';
import { runIn } from '../../src/sandbox/commands.js';
import { spawnIn } from '../../src/sandbox/processes.js';
import type { Sandbox, SandboxProcess } from '../../src/sandbox/types.js';
import { hostPort, ipOf } from '../../src/sandbox/wire.js';
import { ALL_ENGINES, useSandbox } from './suite.js';
import { scaledMs, timeoutScale } from '../../src/sandbox/timeout-scale.js';

const ENGINES = selectEngines([...ALL_ENGINES]);
/** Whether the kernel has MPTCP (CONFIG_MPTCP: its sysctl directory exists). */
const HAS_MPTCP = existsSync('/proc/sys/net/mptcp');
const FAMILIES: Family[] = [4, 6];

const PYTHON = '/usr/bin/python3';
const TOOL = fileURLToPath(new URL('./fixtures/bypass.py', import.meta.url));
/** Host number of the spoofed attacker address on the client side (not configured there). */
const SPOOFED = 99;
const SPOOFED_MAC = '02:00:00:00:00:99';
/** Host number of a second address on the mesh host's interface. */
const SECOND = 12;
// The tool's own bound on each wait, stretched like every other wait (TPCTL_TEST_TIMEOUT_SCALE).
const TOOL_TIMEOUT_S = Math.ceil(3 * timeoutScale());

interface ToolResult {
  reply?: Greeting;
  refused?: string;
  error?: string;
  peername?: string;
  from?: string;
  replies?: Array<{ reply: Greeting; from: string }>;
  sent?: number;
  routed?: number;
}

type Runner = { host: 'client' } | { host: 'mesh'; uid: number; subCgroup?: string };

/** Runs one bypass.py subcommand; its last stdout line is the result. */
async function tool(sb: Sandbox, who: Runner, args: string[]): Promise<ToolResult> {
  // The system interpreter: the app uid may not read root's (pyenv) python3 on PATH.
  const argv = [PYTHON, TOOL, ...args, '--timeout', String(TOOL_TIMEOUT_S)];
  let p;
  if (who.host === 'client') {
    p = spawnIn(sb, 'client', { argv });
  } else if (who.subCgroup) {
    // Joins the sandbox cgroup (spawnIn), moves into the child cgroup as root, then drops to the uid.
    p = spawnIn(sb, 'mesh', {
      inCgroup: true,
      argv: ['sh', '-c', 'echo $$ > "$1/cgroup.procs" && uid=$2 && shift 2 && exec setpriv --reuid="$uid" --regid="$uid" --clear-groups -- "$@"', 'sh', who.subCgroup, String(who.uid), ...argv],
    });
  } else {
    p = spawnIn(sb, 'mesh', { uid: who.uid, inCgroup: true, argv });
  }
  p.closeStdin();
  await p.waitForExit(TOOL_TIMEOUT_S * 1000 + scaledMs(10_000)).catch(async (e: unknown) => {
    await p.stop();
    throw e;
  });
  const last = p.lines.filter(Boolean).at(-1);
  if (!last) throw new Error(`bypass.py ${args.join(' ')}: no output; stderr: ${p.stderr().trim().slice(-500)}`);
  return JSON.parse(last) as ToolResult;
}

/** Runs `attempt` while a sniffer on the client host counts arriving packets that carry a route. */
async function routedPacketsDuring(sb: Sandbox, attempt: () => Promise<ToolResult>): Promise<{ result: ToolResult; routed: number }> {
  const sniffer = spawnIn(sb, 'client', { argv: [PYTHON, TOOL, 'sniff', '--iface', sb.iface.client, '--timeout', String(TOOL_TIMEOUT_S + scaledMs(5_000) / 1000)] });
  try {
    await sniffer.waitForLine((l) => l.includes('"ready"'), scaledMs(5_000));
    const result = await attempt();
    // Packets still in flight (a retransmitted SYN) get a moment, then the sniffer stops.
    await new Promise((r) => setTimeout(r, 300));
    sniffer.closeStdin();
    await sniffer.waitForExit(scaledMs(5_000));
    const last = JSON.parse(sniffer.lines.filter(Boolean).at(-1) ?? '{}') as ToolResult;
    if (typeof last.routed !== 'number') throw new Error(`sniffer: ${sniffer.stderr().trim().slice(-300)}`);
    return { result, routed: last.routed };
  } finally {
    await sniffer.stop();
  }
}

async function mustRunIn(sb: Sandbox, host: 'client' | 'mesh', argv: string[]): Promise<string> {
  const r = await runIn(sb, host, argv);
  if (r.exitCode !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr.trim()}`);
  return r.stdout;
}

/** What the attacker needs: a second address on the mesh interface, neighbour entries for the spoofed client, the mesh MAC. */
async function prepareAttack(sb: Sandbox): Promise<{ meshMac: string; linkLocal: string }> {
  const batch = [
    `address add ${sb.v4(SECOND)}/24 dev ${sb.iface.mesh}`,
    `address add ${sb.v6(SECOND)}/64 dev ${sb.iface.mesh} nodad`,
    // Replies to the spoofed address leave for a MAC nobody has: the client host's
    // kernel ignores them (no RST of its own), the attacker's AF_PACKET socket sees them.
    `neigh replace ${sb.v4(SPOOFED)} lladdr ${SPOOFED_MAC} dev ${sb.iface.mesh} nud permanent`,
    `neigh replace ${sb.v6(SPOOFED)} lladdr ${SPOOFED_MAC} dev ${sb.iface.mesh} nud permanent`,
  ];
  const r = await runIn(sb, 'mesh', ['ip', '-batch', '-'], { input: `${batch.join('\n')}\n` });
  if (r.exitCode !== 0) throw new Error(`mesh setup: ${r.stderr.trim()}`);
  // TCP Fast Open without a cookie: data rides in the SYN (client side, mesh netns only).
  await mustRunIn(sb, 'mesh', ['sysctl', '-q', '-w', 'net.ipv4.tcp_fastopen=5']);
  const link = JSON.parse(await mustRunIn(sb, 'mesh', ['ip', '-j', 'link', 'show', 'dev', sb.iface.mesh])) as Array<{ address: string }>;
  return { meshMac: link[0]!.address, linkLocal: await meshLinkLocal(sb) };
}

/**
 * For a process set up before the install: installs `engine`, runs `afterInstall`, then
 * stops the process and uninstalls (also on failure). Skips only on a too-old kernel.
 */
async function installAround(sb: Sandbox, engine: EngineName, t: TestContext, held: SandboxProcess, afterInstall: () => Promise<void>): Promise<void> {
  let installed = false;
  try {
    const r = await runCli(sb, ['install', 'transparent-proxy', ...conformanceFlags(sb), ...engineFlags(engine, sb)]);
    if (isKernelTooOld(r)) t.skip(`kernel too old: ${r.stderr.trim()}`);
    expect(r.exitCode, describeCli(r)).toBe(0);
    installed = true;
    await afterInstall();
  } finally {
    held.closeStdin();
    await held.stop();
    if (installed) {
      const u = await runCli(sb, ['uninstall', 'transparent-proxy', ...uninstallFlags(engine, sb)]);
      expect(u.exitCode, describeCli(u)).toBe(0);
    }
  }
}

const app: Runner = { host: 'mesh', uid: APP_UID };
const attacker: Runner = { host: 'client' };

function expectInbound(r: ToolResult, origDst: string, peer: string): void {
  expect(r.reply, JSON.stringify(r)).toMatchObject({ via: 'proxy', listener: 'inbound', origDst });
  expect(ipOf(r.reply?.peer ?? '')).toBe(peer);
}

function expectOutbound(r: ToolResult, origDst: string): void {
  expect(r.reply, JSON.stringify(r)).toMatchObject({ via: 'proxy', listener: 'outbound', origDst });
}

/** Strips a %scope suffix. */
const unscoped = (a: string): string => a.replace(/%.*$/, '');

for (const { engine, short } of ENGINES) {
  describe(`bypass: ${engine}`, () => {
    const s = useSandbox(`tpe2e-${short}-x-${process.pid}`, engine, (sb) => conformanceFlags(sb));
    let meshMac = '';
    let linkLocal = '';
    beforeAll(async () => {
      ({ meshMac, linkLocal } = await prepareAttack(s.sb));
    });

    const raw = (f: Family, mode: string, dst?: string): Promise<ToolResult> =>
      tool(s.sb, attacker, [
        'inbound', '--iface', s.sb.iface.client, '--src', ip(s.sb, f, SPOOFED), '--dst', dst ?? meshIp(s.sb, f),
        '--dst-mac', meshMac, '--dport', String(APP_PORTS.plain), '--mode', mode,
      ]);

    describe('inbound: a remote client goes through the proxy, whatever it aims at', () => {
      for (const f of FAMILIES) {
        it(`IPv${f}: a hand-made plain SYN (the control) lands on the inbound listener`, async (t) => {
          s.skipIfTooOld(t);
          expectInbound(await raw(f, 'plain'), hostPort(meshIp(s.sb, f), APP_PORTS.plain), ip(s.sb, f, SPOOFED));
        });

        it(`IPv${f}: a SYN in IP fragments lands on the inbound listener`, async (t) => {
          s.skipIfTooOld(t);
          expectInbound(await raw(f, 'frag'), hostPort(meshIp(s.sb, f), APP_PORTS.plain), ip(s.sb, f, SPOOFED));
        });

        it(`IPv${f}: a SYN to a second address of the interface lands on the inbound listener with that address as original destination`, async (t) => {
          s.skipIfTooOld(t);
          const second = ip(s.sb, f, SECOND);
          const r = await probeTcp(s.sb, { host: 'client' }, second, APP_PORTS.plain, ip(s.sb, f, CLIENT_HOSTS.remote));
          expectInbound(r, hostPort(second, APP_PORTS.plain), ip(s.sb, f, CLIENT_HOSTS.remote));
        });
      }

      for (const mode of ['dstopts', 'hopopts']) {
        it(`IPv6: a SYN with a ${mode === 'dstopts' ? 'destination options' : 'hop-by-hop'} header lands on the inbound listener`, async (t) => {
          s.skipIfTooOld(t);
          expectInbound(await raw(6, mode), hostPort(meshIp(s.sb, 6), APP_PORTS.plain), ip(s.sb, 6, SPOOFED));
        });
      }

      it("IPv6: a SYN to the interface's link-local address lands on the inbound listener with that address as original destination", async (t) => {
        s.skipIfTooOld(t);
        const r = await probeTcp(s.sb, { host: 'client' }, `${linkLocal}%${s.sb.iface.client}`, APP_PORTS.plain);
        expect(r.reply, JSON.stringify(r)).toMatchObject({ via: 'proxy', listener: 'inbound' });
        expect(unscoped(ipOf(r.reply.origDst ?? ''))).toBe(linkLocal);
        expect(r.reply.origDst?.endsWith(`:${APP_PORTS.plain}`)).toBe(true);
      });

      it('IPv6: a fragmented SYN to the link-local address lands on the inbound listener', async (t) => {
        s.skipIfTooOld(t);
        const r = await raw(6, 'frag', linkLocal);
        expect(r.reply, JSON.stringify(r)).toMatchObject({ via: 'proxy', listener: 'inbound' });
        expect(unscoped(ipOf(r.reply?.origDst ?? ''))).toBe(linkLocal);
      });
    });

    describe('outbound: an ordinary app cannot route around the redirect', () => {
      const remote6 = (): string => ip(s.sb, 6, CLIENT_HOSTS.remote);
      const remote4 = (): string => ip(s.sb, 4, CLIENT_HOSTS.remote);

      // Linux lets only CAP_NET_RAW set an IPv4 source route, so those cases run as root:
      // any uid but the proxy's is held to the same rule.
      const root: Runner = { host: 'mesh', uid: 0 };
      const cases = [
        { what: 'TCP with an IPv6 routing header (setsockopt IPV6_RTHDR)', cmd: 'rthdr-tcp', host: remote6, port: REMOTE_PORTS.plain, who: app },
        { what: 'UDP DNS with an IPv6 routing header (type 2) as sendmsg ancillary data', cmd: 'rthdr-udp', host: remote6, port: 53, who: app },
        { what: 'TCP with an IPv4 loose source route (setsockopt IP_OPTIONS, root)', cmd: 'lsrr-tcp', host: remote4, port: REMOTE_PORTS.plain, who: root },
        { what: 'UDP DNS with an IPv4 source route as sendmsg ancillary data (IP_RETOPTS, root)', cmd: 'lsrr-udp', host: remote4, port: 53, who: root },
      ];
      for (const c of cases) {
        it(`${c.what}: no routed packet reaches the remote host; ${engine === 'ebpf' ? 'refused with EPERM' : 'the sender gets no answer'}`, async (t) => {
          s.skipIfTooOld(t);
          const { result, routed } = await routedPacketsDuring(s.sb, () =>
            tool(s.sb, c.who, [c.cmd, '--host', c.host(), '--port', String(c.port), '--via', c.host()]),
          );
          expect(routed, JSON.stringify(result)).toBe(0);
          // A kernel without CONFIG_IPV6_MIP6 refuses a routing header in ancillary data itself.
          const kernelRefusals = c.cmd === 'rthdr-udp' ? [{ error: 'EINVAL: Invalid argument' }] : [];
          if (engine !== 'ebpf') {
            // REDIRECT sends the first hop to loopback, where the routed packet dies: nothing answers.
            expect([{ error: 'timeout' }, ...kernelRefusals], JSON.stringify(result)).toContainEqual(result);
          } else {
            expect([{ refused: 'EPERM' }, ...kernelRefusals], JSON.stringify(result)).toContainEqual(result);
          }
        });
      }

      it('the proxy uid may still set a routing header (the refusal is for ordinary uids)', async (t) => {
        s.skipIfTooOld(t);
        const r = await tool(s.sb, { host: 'mesh', uid: PROXY_UID }, ['rthdr-tcp', '--host', remote6(), '--port', String(REMOTE_PORTS.plain), '--via', remote6()]);
        expect(r.refused, JSON.stringify(r)).toBeUndefined();
      });
    });

    describe('outbound: ordinary ways to connect are all redirected', () => {
      for (const f of FAMILIES) {
        const remote = (): string => ip(s.sb, f, CLIENT_HOSTS.remote);

        it(`IPv${f}: TCP Fast Open (data in the SYN, sendto without connect) lands on the outbound listener`, async (t) => {
          s.skipIfTooOld(t);
          expectOutbound(await tool(s.sb, app, ['tfo', '--host', remote(), '--port', String(REMOTE_PORTS.plain)]), hostPort(remote(), REMOTE_PORTS.plain));
        });

        it(`IPv${f}: a connect submitted through io_uring lands on the outbound listener`, async (t) => {
          s.skipIfTooOld(t);
          const r = await tool(s.sb, app, ['iouring', '--host', remote(), '--port', String(REMOTE_PORTS.plain)]);
          expectOutbound(r, hostPort(remote(), REMOTE_PORTS.plain));
        });

        it(`IPv${f}: DNS sent with sendmmsg (two datagrams, unconnected UDP) lands on the DNS listener, replies from the server`, async (t) => {
          s.skipIfTooOld(t);
          const r = await tool(s.sb, app, ['sendmmsg', '--host', remote(), '--port', '53']);
          expect(r.sent, JSON.stringify(r)).toBe(2);
          expect(r.replies?.length, JSON.stringify(r)).toBe(2);
          for (const x of r.replies ?? []) {
            expect(x.reply.via).toBe('proxy-dns');
            expect(x.from).toBe(remote());
          }
        });

        it(`IPv${f}: an app in a child cgroup of the installed one is redirected too`, async (t) => {
          s.skipIfTooOld(t);
          const sub = join(s.sb.cgroupPath, 'i6-child');
          mkdirSync(sub);
          try {
            const r = await tool(s.sb, { host: 'mesh', uid: APP_UID, subCgroup: sub }, ['tcp', '--host', remote(), '--port', String(REMOTE_PORTS.plain)]);
            expectOutbound(r, hostPort(remote(), REMOTE_PORTS.plain));
          } finally {
            for (let i = 0; i < 50; i++) {
              try {
                rmdirSync(sub);
                break;
              } catch {
                await new Promise((r) => setTimeout(r, 100));
              }
            }
          }
        });
      }

      for (const f of FAMILIES) {
        const remote = (): string => ip(s.sb, f, CLIENT_HOSTS.remote);
        it(`IPv${f}: MPTCP lands on the outbound listener and the app's getpeername() still says the original address${HAS_MPTCP ? '' : ' (this kernel has no MPTCP: the socket is refused)'}`, async (t) => {
          s.skipIfTooOld(t);
          const r = await tool(s.sb, app, ['mptcp', '--host', remote(), '--port', String(REMOTE_PORTS.plain)]);
          if (!HAS_MPTCP) {
            // Debian 11's 5.10 is built without MPTCP: no such socket, so no way around the proxy through it.
            expect(r.reply, JSON.stringify(r)).toBeUndefined();
            expect(r.error, JSON.stringify(r)).toMatch(/^EPROTONOSUPPORT/);
            return;
          }
          expectOutbound(r, hostPort(remote(), REMOTE_PORTS.plain));
          expect(r.peername).toBe(remote());
        });

        it(`IPv${f}: a socket bound to the interface (SO_BINDTODEVICE) ${engine === 'ebpf' ? 'lands on the outbound listener' : 'does not reach the remote host directly (its connect times out)'}`, async (t) => {
          s.skipIfTooOld(t);
          const r = await tool(s.sb, app, ['bound-tcp', '--iface', s.sb.iface.mesh, '--host', remote(), '--port', String(REMOTE_PORTS.plain)]);
          // iptables: REDIRECT sends it to loopback while the socket stays bound to the interface: it times out (README).
          if (engine === 'ebpf') {
            expectOutbound(r, hostPort(remote(), REMOTE_PORTS.plain));
            expect(r.peername).toBe(remote());
          } else expect(r, JSON.stringify(r)).toEqual({ error: 'timeout' });
        });
      }

      for (const f of FAMILIES) {
        it(`IPv${f}: DNS sent with an interface index (PKTINFO) ${engine === 'ebpf' ? 'fails loudly' : 'lands on the DNS listener'}, never reaching the server around it`, async (t) => {
          s.skipIfTooOld(t);
          const remote = ip(s.sb, f, CLIENT_HOSTS.remote);
          const r = await tool(s.sb, app, ['udp-ifindex', '--iface', s.sb.iface.mesh, '--host', remote, '--port', '53']);
          if (engine === 'ebpf') {
            // The DNS listener is on loopback, which such a datagram cannot reach: refused, not lost (README, Limits).
            expect(r, JSON.stringify(r)).toEqual(f === 4 ? { refused: 'EPERM' } : { error: 'ENETUNREACH: Network is unreachable' });
          } else {
            expect(r.reply?.via, JSON.stringify(r)).toBe('proxy-dns');
            expect(r.from).toBe(remote);
          }
        });
      }

      it('IPv4-mapped IPv6 (::ffff:a.b.c.d on an AF_INET6 socket) lands on the outbound listener', async (t) => {
        s.skipIfTooOld(t);
        const remote = ip(s.sb, 4, CLIENT_HOSTS.remote);
        const r = await tool(s.sb, app, ['tcp', '--host', `::ffff:${remote}`, '--port', String(REMOTE_PORTS.plain)]);
        expectOutbound(r, hostPort(remote, REMOTE_PORTS.plain));
      });
    });

    // Last: stops the proxy (the shared cast) and starts a new one.
    describe('fail closed: without a proxy listener nothing reaches the app', () => {
      it('with the proxy stopped, every inbound path is refused (an app listening on the inbound port at loopback, or in a network namespace of its own, gets nothing); a proxy started afterwards receives them again', async (t) => {
        s.skipIfTooOld(t);
        await s.cast.proxy.stop();
        // An ordinary app takes the inbound port on loopback meanwhile: it must not get the traffic either.
        const squatter = spawnIn(s.sb, 'mesh', { uid: APP_UID, inCgroup: true, argv: [PYTHON, TOOL, 'squat', '--host', '127.0.0.1,::1', '--port', String(PORTS.inbound)] });
        // Nor a process of the cgroup in a network namespace of its own (a container, an
        // unshare) listening on the wildcard addresses of the inbound port, as the proxy
        // does: cgroup hooks see its listen() too, but it is not tpctl's namespace.
        const foreign = spawnIn(s.sb, 'mesh', {
          inCgroup: true,
          argv: ['unshare', '--net', '--', 'sh', '-c', 'ip link set lo up && exec setpriv --reuid="$1" --regid="$1" --clear-groups -- "$2" "$3" squat --host 0.0.0.0,:: --port "$4"',
            'sh', String(APP_UID), PYTHON, TOOL, String(PORTS.inbound)],
        });
        await squatter.waitForLine((l) => l.includes('"ready"'), scaledMs(10_000));
        await foreign.waitForLine((l) => l.includes('"ready"'), scaledMs(10_000));
        const client = { host: 'client' as const };
        for (const f of FAMILIES) {
          await expect(probeTcp(s.sb, client, meshIp(s.sb, f), APP_PORTS.plain, ip(s.sb, f, CLIENT_HOSTS.remote))).rejects.toThrow(/ECONNREFUSED/);
          await expect(probeTcp(s.sb, client, ip(s.sb, f, SECOND), APP_PORTS.plain)).rejects.toThrow(/ECONNREFUSED/);
          expect(await raw(f, 'frag')).toEqual({ refused: 'RST' });
        }
        await expect(probeTcp(s.sb, client, `${linkLocal}%${s.sb.iface.client}`, APP_PORTS.plain)).rejects.toThrow(/ECONNREFUSED/);
        expect(await raw(6, 'dstopts')).toEqual({ refused: 'RST' });
        for (const p of [squatter, foreign]) {
          p.closeStdin();
          await p.waitForExit(scaledMs(5_000));
          expect(JSON.parse(p.lines.filter(Boolean).at(-1) ?? '{}')).toEqual({ accepted: [] });
        }

        // A proxy that starts after the install: its new listener is found (sockops, for eBPF).
        await startProxy(s.sb);
        const r = await probeTcp(s.sb, client, `${linkLocal}%${s.sb.iface.client}`, APP_PORTS.plain);
        expect(r.reply, JSON.stringify(r)).toMatchObject({ via: 'proxy', listener: 'inbound' });
        expectInbound(await raw(4, 'frag'), hostPort(meshIp(s.sb, 4), APP_PORTS.plain), ip(s.sb, 4, SPOOFED));
      });
    });
  });

  describe(`bypass: ${engine}: sockets set up before the install`, () => {
    const s = useSandbox(`tpe2e-${short}-y-${process.pid}`, engine, undefined);

    it('a routing header set on a UDP socket before the install: no routed packet leaves afterwards', async (t) => {
      const sb = s.sb;
      const remote = ip(sb, 6, CLIENT_HOSTS.remote);
      const held = spawnIn(sb, 'mesh', { uid: APP_UID, inCgroup: true, argv: [PYTHON, TOOL, 'rthdr-hold', '--host', remote, '--port', '53', '--via', remote, '--timeout', String(TOOL_TIMEOUT_S)] });
      await held.waitForLine((l) => l.includes('"ready"'), scaledMs(10_000));
      await installAround(sb, engine, t, held, async () => {
        const { result, routed } = await routedPacketsDuring(sb, async () => {
          held.writeLine('send');
          await held.waitForExit(TOOL_TIMEOUT_S * 1000 + scaledMs(5_000));
          return JSON.parse(held.lines.filter((l) => l.startsWith('{')).at(-1) ?? '{}') as ToolResult;
        });
        expect(routed, JSON.stringify(result)).toBe(0);
        // eBPF: cgroup_skb/egress drops it (setsockopt was not hooked yet when the header was set).
        // The rule engines: the redirected first hop is loopback, where the routed datagram dies.
        expect(result).toEqual(engine === 'ebpf' ? { refused: 'EPERM' } : { error: 'timeout' });
      });
    });

    for (const f of FAMILIES) {
      it(`IPv${f}: a UDP socket connected to the nameserver: its next query does not reach the server around the DNS listener${engine === 'ebpf' ? ' (refused with EPERM)' : ' (redirected)'}`, async (t) => {
        const sb = s.sb;
        const remote = ip(sb, f, CLIENT_HOSTS.remote);
        const held = spawnIn(sb, 'mesh', { uid: APP_UID, inCgroup: true, argv: [PYTHON, TOOL, 'udp-hold', '--host', remote, '--port', '53', '--timeout', String(TOOL_TIMEOUT_S)] });
        const before = JSON.parse(await held.waitForLine((l) => l.startsWith('{'), scaledMs(10_000))) as ToolResult;
        expect(before.reply?.via, JSON.stringify(before)).toBe('remote-dns');
        await installAround(sb, engine, t, held, async () => {
          held.writeLine('again');
          await held.waitForLine(() => held.lines.filter((l) => l.startsWith('{')).length >= 2, TOOL_TIMEOUT_S * 1000 + scaledMs(5_000));
          const after = JSON.parse(held.lines.filter((l) => l.startsWith('{'))[1]!) as ToolResult;
          if (engine === 'ebpf') expect(after).toEqual({ refused: 'EPERM' });
          else expect(after.reply?.via).toBe('proxy-dns');
        });
      });
    }
  });
}
