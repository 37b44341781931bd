/**
 * `tpctl verify transparent-proxy`: proves with real connections that the installed
 * redirection works, the way Kuma's validator and Istio's validation container do,
 * for whichever engine is installed.
 *
 * It listens on the outbound, inbound and DNS ports itself (run it after install and
 * before the proxy starts), then a probe process — an ordinary uid, in the cgroup the
 * engine watches — connects to TEST-NET addresses (192.0.2.0/24, 2001:db8::/32) and
 * queries DNS; each must land on verify's listener with the right original
 * destination. A second probe as the proxy's uid connects to 127.0.0.2, which every
 * engine sends to the inbound listener for the proxy only (Kuma's rule): proof that
 * the proxy's uid is recognised and never looped into the outbound listener. When
 * redirection works nothing leaves the host: every destination is then local.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server, type Socket } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseCidr } from '../net/address.js';
import type { Cidr, TransparentProxyConfig } from '../config/types.js';
import type { VerifyPlacement } from '../engine.js';
import { originalDestination } from '../host/libc.js';
import { hostHasIpv6 } from '../iptables/backend.js';
import { shippedFile } from '../host/package-file.js';
import type { ProbeOutcome, ProbeSpec } from './client.js';

const clientScript = shippedFile(import.meta.url, './client.js', './verify/client.js');

export type ListenerName = 'outbound' | 'inbound' | 'dns' | 'direct';

interface Arrival {
  listener: ListenerName;
  /** What SO_ORIGINAL_DST (or the accepted socket's local address) said. */
  origDst?: string;
  peer: string;
}

export interface VerifyCheck {
  ok: boolean;
  line: string;
}

export interface VerifyResult {
  /** Undefined when every port was free and the traffic test ran. */
  portsTaken?: string[];
  checks: VerifyCheck[];
  passed: boolean;
}

const hp = (a: string, p: number): string => (a.includes(':') ? `[${a}]:${p}` : `${a}:${p}`);
const unmap = (a: string): string => (a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a);

function contains(c: Cidr, address: string): boolean {
  const family = address.includes(':') ? 'ipv6' : 'ipv4';
  if (c.family !== family) return false;
  return parseCidr(`${address}/${c.prefixLength}`).address === c.address;
}

function portExcluded(cfg: TransparentProxyConfig, uid: number, proto: 'tcp' | 'udp', port: number): boolean {
  if (proto === 'tcp' && cfg.outbound.excludePorts.some((r) => r.from <= port && port <= r.to)) return true;
  return cfg.outbound.excludePortsForUids.some(
    (ex) =>
      (ex.protocol === 'all' || ex.protocol === proto) &&
      (ex.ports.length === 0 || ex.ports.some((r) => r.from <= port && port <= r.to)) &&
      ex.uids.some((u) => u.from <= uid && uid <= u.to),
  );
}

/** An ordinary uid the settings redirect: not the proxy's, no per-uid exclusion. */
export function pickProbeUid(cfg: TransparentProxyConfig): number {
  for (let uid = 65534; uid > 60000; uid--) {
    if (uid === cfg.kumaDpUser.uid) continue;
    if (!cfg.outbound.excludePortsForUids.some((ex) => ex.uids.some((u) => u.from <= uid && uid <= u.to))) return uid;
  }
  throw new Error('verify: no ordinary uid left between 60001 and 65534 without a per-uid exclusion (pass --uid)');
}

const TEST_NET = { ipv4: ['192.0.2.10', '198.51.100.10', '203.0.113.10'], ipv6: ['2001:db8::10', '2001:db8:1::10'] };

/** A TEST-NET destination and port the settings redirect for `uid`. */
function outboundTarget(cfg: TransparentProxyConfig, family: 'ipv4' | 'ipv6', uid: number): { host: string; port: number } | undefined {
  const host = TEST_NET[family].find((a) => !cfg.outbound.excludeIps.some((c) => contains(c, a)));
  const port = [80, 443, 8080, 9, 1].find((p) => !portExcluded(cfg, uid, 'tcp', p));
  return host && port ? { host, port } : undefined;
}

interface Listeners {
  arrivals: Map<number, Arrival>;
  directPort: number;
  close(): Promise<void>;
}

function describeAccepted(socket: Socket, listener: ListenerName, listenerPort: number): Arrival {
  const local = unmap(socket.localAddress ?? '');
  const arrival: Arrival = { listener, peer: hp(unmap(socket.remoteAddress ?? ''), socket.remotePort ?? 0) };
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  try {
    if (typeof fd !== 'number' || fd < 0) throw new Error('no fd');
    const o = originalDestination(fd, socket.localAddress ?? '');
    arrival.origDst = hp(unmap(o.address), o.port);
  } catch {
    // tc/sk_assign keeps the original destination as the local address
    if ((socket.localPort ?? 0) !== listenerPort) arrival.origDst = hp(local, socket.localPort ?? 0);
  }
  return arrival;
}

/** Binds every listener; rejects with the list of taken ports when some are in use. */
async function listen(cfg: TransparentProxyConfig, placement: VerifyPlacement, ipv6: boolean): Promise<Listeners> {
  const arrivals = new Map<number, Arrival>();
  const servers: Server[] = [];
  const children: ChildProcess[] = [];
  const taken: string[] = [];
  const close = async (): Promise<void> => {
    for (const s of servers) s.close();
    for (const c of children) {
      c.stdin?.end();
      c.kill('SIGTERM');
    }
  };
  const tcp = (listener: ListenerName, host: string, port: number): Promise<number> =>
    new Promise((resolve) => {
      const server = createServer((socket) => {
        socket.on('error', () => socket.destroy());
        // A direct arrival was not redirected: there is no original destination to read.
        const arrival: Arrival = listener === 'direct' ? { listener, peer: hp(unmap(socket.remoteAddress ?? ''), socket.remotePort ?? 0) } : describeAccepted(socket, listener, port);
        let buf = '';
        socket.on('data', (d) => {
          buf += d.toString('utf8');
          const m = /^tpctl-verify (\d+)\n/.exec(buf);
          if (m) {
            arrivals.set(Number(m[1]), arrival);
            socket.end(`ok ${listener}\n`);
          }
        });
        socket.setTimeout(5_000, () => socket.destroy());
      });
      server.once('error', (e: NodeJS.ErrnoException) => {
        taken.push(`${hp(host, port)} (${e.code ?? e.message})`);
        resolve(0);
      });
      server.listen({ host, port, ipv6Only: host.includes(':') }, () => {
        servers.push(server);
        resolve((server.address() as { port: number }).port);
      });
    });
  /** The DNS listener runs as the proxy's uid (see client.ts serve-dns), in the cgroup. */
  const dns = async (hosts: string[], port: number): Promise<void> => {
    const child = spawnAs(cfg.kumaDpUser.uid, placement, [clientScript, 'serve-dns', String(port), ...hosts], 'pipe');
    children.push(child);
    let buf = '';
    const first = new Promise<string>((resolve) => {
      const timer = setTimeout(() => resolve('{"taken":"DNS listener did not start within 10 s"}'), 10_000);
      child.stdout!.on('data', (d: Buffer) => {
        buf += d.toString('utf8');
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          const msg = JSON.parse(line) as { ready?: boolean; taken?: string; id?: number; peer?: string };
          if (msg.id !== undefined) arrivals.set(msg.id, { listener: 'dns', peer: msg.peer ?? '?' });
          else {
            clearTimeout(timer);
            resolve(line);
          }
        }
      });
      child.on('exit', () => resolve('{"taken":"DNS listener exited"}'));
    });
    const msg = JSON.parse(await first) as { taken?: string };
    if (msg.taken) taken.push(msg.taken);
  };
  const hosts = ipv6 ? ['0.0.0.0', '::'] : ['0.0.0.0'];
  for (const h of hosts) await tcp('outbound', h, cfg.outbound.port);
  if (cfg.inbound.enabled) for (const h of hosts) await tcp('inbound', h, cfg.inbound.port);
  if (cfg.dns.mode !== 'off') await dns(ipv6 ? ['127.0.0.1', '::1'] : ['127.0.0.1'], cfg.dns.port);
  const directPort = await tcp('direct', '127.0.0.2', 0);
  if (taken.length > 0) {
    await close();
    throw Object.assign(new Error('ports taken'), { taken });
  }
  return { arrivals, directPort, close };
}

/** Runs the probe client as `uid` in the placement's cgroup; resolves with one outcome per probe. */
/** node `args` as `uid`, in the placement's cgroup from its first instruction (the shell joins, then execs). */
function spawnAs(uid: number, placement: VerifyPlacement, args: string[], stdin: 'ignore' | 'pipe'): ChildProcess {
  const inner = ['setpriv', `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', '--', process.execPath, ...args];
  const script = placement.cgroupPath ? 'echo $$ > "$1" && shift && exec "$@"' : 'shift && exec "$@"';
  const procs = placement.cgroupPath ? join(placement.cgroupPath, 'cgroup.procs') : '-';
  return spawn('sh', ['-c', script, 'sh', procs, ...inner], { stdio: [stdin, 'pipe', 'pipe'] });
}

async function runProbes(uid: number, placement: VerifyPlacement, probes: ProbeSpec[]): Promise<Map<number, ProbeOutcome>> {
  const child = spawnAs(uid, placement, [clientScript, JSON.stringify(probes)], 'ignore');
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString('utf8')));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString('utf8')));
  const limit = 5_000 + probes.length * 4_000;
  const code = await new Promise<number | null>((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), limit);
    child.on('exit', (c) => {
      clearTimeout(timer);
      resolve(c);
    });
  });
  const outcomes = new Map<number, ProbeOutcome>();
  for (const line of out.split('\n').filter(Boolean)) {
    const o = JSON.parse(line) as ProbeOutcome;
    outcomes.set(o.id, o);
  }
  if (outcomes.size === 0) throw new Error(`verify: the probe (uid ${uid}) failed: ${err.trim() || `exit ${code}`}`);
  return outcomes;
}

interface PlannedProbe extends ProbeSpec {
  who: string;
  expect: ListenerName;
  /** Expected original destination (TCP). */
  origDst?: string;
  /** What works when this passes, for the failure line. */
  meaning: string;
}

export async function verifyTraffic(cfg: TransparentProxyConfig, placement: VerifyPlacement, uid: number): Promise<VerifyResult> {
  const ipv6 = cfg.ipFamilyMode === 'dualstack' && hostHasIpv6();
  // The eBPF engine answers SO_ORIGINAL_DST from a cgroup hook: the listeners, like the
  // proxy they stand in for, must be in the cgroup too. Only this process moves.
  if (placement.cgroupPath) writeFileSync(join(placement.cgroupPath, 'cgroup.procs'), String(process.pid));
  let l: Listeners;
  try {
    l = await listen(cfg, placement, ipv6);
  } catch (e) {
    const taken = (e as { taken?: string[] }).taken;
    if (taken) return { portsTaken: taken, checks: [], passed: false };
    throw e;
  }
  try {
    let id = 1;
    const app: PlannedProbe[] = [];
    for (const family of ipv6 ? (['ipv4', 'ipv6'] as const) : (['ipv4'] as const)) {
      const t = outboundTarget(cfg, family, uid);
      if (!t) continue;
      app.push({ id: id++, proto: 'tcp', ...t, who: `uid ${uid}`, expect: 'outbound', origDst: hp(t.host, t.port), meaning: `outbound ${family === 'ipv4' ? 'IPv4' : 'IPv6'} redirection` });
    }
    if (cfg.dns.mode !== 'off') {
      for (const family of ipv6 ? (['ipv4', 'ipv6'] as const) : (['ipv4'] as const)) {
        const server = cfg.dns.mode === 'all' ? (family === 'ipv4' ? '192.0.2.53' : '2001:db8::53') : cfg.dns.servers[family][0];
        if (!server || portExcluded(cfg, uid, 'udp', 53)) continue;
        app.push({ id: id++, proto: 'udp', host: server, port: 53, who: `uid ${uid}`, expect: 'dns', meaning: `DNS redirection (${family === 'ipv4' ? 'IPv4' : 'IPv6'})` });
      }
    }
    const proxy: PlannedProbe[] = [
      {
        id: id++,
        proto: 'tcp',
        host: '127.0.0.2',
        port: l.directPort,
        who: `the proxy's uid ${cfg.kumaDpUser.uid}`,
        expect: cfg.inbound.enabled ? 'inbound' : 'direct',
        ...(cfg.inbound.enabled ? { origDst: hp('127.0.0.2', l.directPort) } : {}),
        meaning: cfg.inbound.enabled
          ? "sending the proxy's own connections to local addresses to the inbound listener (it needs the proxy's uid recognised)"
          : "leaving the proxy's uid alone",
      },
    ];
    const outcomes = new Map([...(await runProbes(uid, placement, app)), ...(await runProbes(cfg.kumaDpUser.uid, placement, proxy))]);
    const checks = [...app, ...proxy].map((p) => judge(p, outcomes.get(p.id), l.arrivals.get(p.id)));
    return { checks, passed: checks.every((c) => c.ok) };
  } finally {
    await l.close();
  }
}

function judge(p: PlannedProbe, o: ProbeOutcome | undefined, a: Arrival | undefined): VerifyCheck {
  const what = `${p.who}: ${p.proto === 'udp' ? 'DNS query to' : 'TCP to'} ${hp(p.host, p.port)}`;
  const listenerName = (n: ListenerName): string => (n === 'direct' ? 'its destination directly' : `the ${n === 'dns' ? 'DNS' : n} listener`);
  if (a && a.listener === p.expect) {
    if (p.origDst && a.origDst !== p.origDst) {
      return { ok: false, line: `FAIL ${what}: reached ${listenerName(a.listener)} but the original destination reads ${a.origDst ?? 'nothing'} (SO_ORIGINAL_DST broken)` };
    }
    if (p.proto === 'udp' && !o?.ok) {
      return { ok: false, line: `FAIL ${what}: reached the DNS listener but its reply never came back (${o?.error ?? 'no outcome'})` };
    }
    if (p.proto === 'udp' && o?.reply !== hp(p.host, p.port)) {
      return { ok: false, line: `FAIL ${what}: reached the DNS listener but the reply came from ${o?.reply}, not from ${hp(p.host, p.port)}` };
    }
    return { ok: true, line: `ok   ${what} → ${listenerName(a.listener)}${a.origDst ? `, original destination ${a.origDst}` : ''}` };
  }
  if (a) {
    const loop = a.listener === 'outbound' && p.expect !== 'outbound' ? ' (the proxy would loop into itself)' : '';
    return { ok: false, line: `FAIL ${what}: reached ${listenerName(a.listener)} instead of ${listenerName(p.expect)}${loop}: ${p.meaning} is broken` };
  }
  return { ok: false, line: `FAIL ${what}: never reached ${listenerName(p.expect)} (${o?.error ?? 'no outcome'}): ${p.meaning} is not working` };
}
