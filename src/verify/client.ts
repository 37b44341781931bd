/**
 * verify's probe: run by `tpctl verify` as an ordinary (or the proxy's) uid, inside
 * the cgroup the engine watches. Makes the connections and queries given as JSON in
 * argv[2] and prints one JSON line per probe:
 *   {"id":1,"ok":true,"local":"10.0.0.5:40312","reply":"ok outbound"}
 *   {"id":2,"ok":false,"error":"connect ETIMEDOUT 192.0.2.10:80"}
 * Every wait is bounded; the process exits when all probes are done.
 */
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { dnsQuery, dnsReply, probeIdOf } from './dns-wire.js';

export interface ProbeSpec {
  id: number;
  proto: 'tcp' | 'udp';
  host: string;
  port: number;
}

export interface ProbeOutcome {
  id: number;
  ok: boolean;
  error?: string;
  /** TCP: the client's local end after connect. */
  local?: string;
  /** TCP: the listener's answer line; UDP: who the reply came from. */
  reply?: string;
}

const TIMEOUT_MS = 3_000;

function hp(a: string | undefined, p: number | undefined): string {
  return a?.includes(':') ? `[${a}]:${p}` : `${a}:${p}`;
}

function tcp(p: ProbeSpec): Promise<ProbeOutcome> {
  return new Promise((resolve) => {
    const s = connect({ host: p.host, port: p.port });
    let buf = '';
    const done = (o: Omit<ProbeOutcome, 'id'>): void => {
      clearTimeout(timer);
      s.destroy();
      resolve({ id: p.id, ...o });
    };
    const timer = setTimeout(() => done({ ok: false, error: `no answer from ${hp(p.host, p.port)} within ${TIMEOUT_MS} ms` }), TIMEOUT_MS);
    s.on('connect', () => s.write(`tpctl-verify ${p.id}\n`));
    s.on('data', (d) => {
      buf += d.toString('utf8');
      const nl = buf.indexOf('\n');
      if (nl >= 0) done({ ok: true, local: hp(s.localAddress, s.localPort), reply: buf.slice(0, nl) });
    });
    s.on('error', (e: NodeJS.ErrnoException) => done({ ok: false, error: `connect ${e.code ?? e.message} ${hp(p.host, p.port)}` }));
    s.on('end', () => done({ ok: false, error: `${hp(p.host, p.port)} closed the connection without an answer (not verify's listener)` }));
  });
}

function udp(p: ProbeSpec): Promise<ProbeOutcome> {
  return new Promise((resolve) => {
    const s = createSocket(p.host.includes(':') ? 'udp6' : 'udp4');
    const done = (o: Omit<ProbeOutcome, 'id'>): void => {
      clearTimeout(timer);
      s.close();
      resolve({ id: p.id, ...o });
    };
    const timer = setTimeout(() => done({ ok: false, error: `no reply from ${hp(p.host, p.port)} within ${TIMEOUT_MS} ms` }), TIMEOUT_MS);
    s.on('error', (e: NodeJS.ErrnoException) => done({ ok: false, error: `${e.code ?? e.message} ${hp(p.host, p.port)}` }));
    s.on('message', (_m, from) => done({ ok: true, reply: hp(from.address, from.port) }));
    // Connected, like glibc's resolver: the engines must handle connect() and the reply's source.
    s.connect(p.port, p.host, () => s.send(dnsQuery(p.id)));
  });
}

/**
 * `client.js serve-dns PORT HOST...`: the DNS listener, run as the proxy's uid (iptables
 * puts the proxy's replies from the DNS port in their own conntrack zone, so only a
 * reply from that uid finds its way back). Prints {"ready":true} or {"taken":"host:port"},
 * then one {"id":N,"peer":"ip:port"} per verify query; exits when stdin closes.
 */
async function serveDns(port: number, hosts: string[]): Promise<void> {
  for (const host of hosts) {
    const u = createSocket(host.includes(':') ? 'udp6' : 'udp4');
    u.on('message', (msg, from) => {
      const id = probeIdOf(msg);
      if (id === undefined) return;
      process.stdout.write(`${JSON.stringify({ id, peer: hp(from.address, from.port) })}\n`);
      u.send(dnsReply(msg), from.port, from.address);
    });
    const err = await new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
      u.once('error', resolve);
      u.bind(port, host, () => resolve(undefined));
    });
    if (err) {
      process.stdout.write(`${JSON.stringify({ taken: `${hp(host, port)}/udp (${err.code ?? err.message})` })}\n`);
      process.exit(0);
    }
  }
  process.stdout.write(`${JSON.stringify({ ready: true })}\n`);
  setTimeout(() => process.exit(0), 120_000).unref();
  await new Promise<void>((resolve) => {
    process.stdin.on('end', resolve);
    process.stdin.on('error', resolve);
    process.stdin.resume();
  });
}

async function main(): Promise<void> {
  if (process.argv[2] === 'serve-dns') {
    await serveDns(Number(process.argv[3]), process.argv.slice(4));
    return;
  }
  const probes = JSON.parse(process.argv[2] ?? '[]') as ProbeSpec[];
  for (const p of probes) {
    const t0 = Date.now();
    const o = await (p.proto === 'tcp' ? tcp(p) : udp(p));
    process.stdout.write(`${JSON.stringify({ ...o, ms: Date.now() - t0 })}\n`);
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`verify probe: ${(e as Error).message}\n`);
    process.exit(1);
  },
);
