/**
 * A quick traffic smoke check run inside a test namespace: a fake proxy on
 * :15001 (TCP) and 127.0.0.1/[::1]:15053 (UDP), then connections from an app
 * (root) and from the proxy uid. Every wait is bounded. The full conformance
 * suite (original destinations, inbound, getpeername) lives in test/e2e.
 */
import type { Netns } from './run-in-netns.js';
import { scaledMs } from '../../src/sandbox/timeout-scale.js';

export interface ProbeReport {
  /** What the app got back for each target ('proxy', 'app', 'dns', or an error code). */
  app: Record<string, string>;
  /** What a process running as the proxy uid got back. */
  proxyUid: Record<string, string>;
  /** Source address of the DNS replies the app received. */
  dnsReplyFrom: Record<string, string>;
}

const PROBE = `
import net from 'node:net';
import dgram from 'node:dgram';
import { spawn } from 'node:child_process';
const [proxyUid, targetsJson] = [Number(process.argv[1]), process.argv[2]];
const targets = JSON.parse(targetsJson);

function tcp(host, port) {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    let data = '';
    const done = (v) => { s.destroy(); clearTimeout(t); resolve(v); };
    const t = setTimeout(() => done('timeout'), ${scaledMs(1500)});
    s.on('data', (d) => { data += d; });
    s.on('end', () => done(data.trim()));
    s.on('error', (e) => done(e.code));
  });
}
function udp(host, port) {
  return new Promise((resolve) => {
    const s = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
    const done = (v) => { clearTimeout(t); s.close(); resolve(v); };
    const t = setTimeout(() => done({ reply: 'timeout', from: '' }), ${scaledMs(1500)});
    s.on('error', (e) => done({ reply: e.code, from: '' }));
    s.connect(port, host, () => s.send('q'));
    s.on('message', (m, rinfo) => done({ reply: m.toString(), from: rinfo.address + ':' + rinfo.port }));
  });
}

function spawnAsProxy(role) {
  return spawn(process.execPath, ['--input-type=module', '-e', process.env.TPT_PROBE_SELF, String(proxyUid), targetsJson], {
    uid: proxyUid, gid: proxyUid, env: { ...process.env, TPT_PROBE_ROLE: role }, stdio: ['pipe', 'pipe', 'inherit'],
  });
}
async function collect(child, untilReady) {
  let out = '';
  const killer = setTimeout(() => child.kill('SIGKILL'), ${scaledMs(10_000)});
  return new Promise((resolve) => {
    child.stdout.on('data', (d) => {
      out += d;
      if (untilReady && out.includes('ready')) { clearTimeout(killer); resolve(out); }
    });
    child.on('close', () => { clearTimeout(killer); resolve(out); });
  });
}

const role = process.env.TPT_PROBE_ROLE;
if (role === 'client') {
  const out = {};
  for (const [host, port] of targets.tcp) out[host + ':' + port] = await tcp(host, port);
  process.stdout.write(JSON.stringify(out));
} else if (role === 'dns') {
  // The DNS listener runs as the proxy uid, as the real one does: the conntrack zone
  // rules pick its replies out by uid.
  for (const host of ['127.0.0.1', '::1']) {
    const u = dgram.createSocket(host === '::1' ? 'udp6' : 'udp4');
    u.on('message', (_m, r) => u.send('dns', r.port, r.address));
    await new Promise((r) => u.bind(15053, host, r));
  }
  process.stdout.write('ready\\n');
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
} else {
  const servers = [];
  const listen = (port, host, reply) => new Promise((r) => {
    const s = net.createServer((c) => c.end(reply + '\\n'));
    servers.push(s);
    s.listen({ port, host }, r);
  });
  await listen(15001, '::', 'proxy');
  await listen(8080, '127.0.0.1', 'app');
  const dns = spawnAsProxy('dns');
  await collect(dns, true);
  const report = { app: {}, proxyUid: {}, dnsReplyFrom: {} };
  for (const [host, port] of targets.tcp) report.app[host + ':' + port] = await tcp(host, port);
  for (const [host, port] of targets.udp) {
    const r = await udp(host, port);
    report.app['udp ' + host + ':' + port] = r.reply;
    report.dnsReplyFrom[host] = r.from;
  }
  dns.stdin.end();
  report.proxyUid = JSON.parse((await collect(spawnAsProxy('client'), false)) || '{}');
  for (const s of servers) s.close();
  process.stdout.write(JSON.stringify(report));
}
`;

export async function probeTraffic(
  ns: Netns,
  proxyUid: number,
  targets: { tcp: Array<[string, number]>; udp: Array<[string, number]> },
): Promise<ProbeReport> {
  const r = await ns.exec(process.execPath, ['--input-type=module', '-e', PROBE, String(proxyUid), JSON.stringify(targets)], {
    env: { TPT_PROBE_SELF: PROBE, TPT_PROBE_ROLE: 'server' },
  });
  return JSON.parse(r.stdout) as ProbeReport;
}
