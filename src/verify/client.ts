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
import { dnsQuery } from './dns-wire.js';

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

async function main(): Promise<void> {
  const probes = JSON.parse(process.argv[2] ?? '[]') as ProbeSpec[];
  for (const p of probes) {
    const o = await (p.proto === 'tcp' ? tcp(p) : udp(p));
    process.stdout.write(`${JSON.stringify(o)}\n`);
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`verify probe: ${(e as Error).message}\n`);
    process.exit(1);
  },
);
