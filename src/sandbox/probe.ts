/**
 * A one-shot client for the sandbox, run as some uid inside a host of it:
 *
 *   node dist/sandbox/probe.js tcp --host IP --port P [--local IP] [--hold]
 *   node dist/sandbox/probe.js udp --host IP --port 53 [--connected]
 *   node dist/sandbox/probe.js dns-udp|dns-tcp --host IP --port 53 [--connected]
 *
 * tcp prints {"reply": <server's greeting>, "peername": "ip:port", "sockname": "ip:port"};
 * peername is getpeername() as the application sees it. With --hold it then sends
 * every stdin line and prints {"echo": "<line>"} for each line echoed back, until
 * stdin closes.
 * udp sends one datagram (after connect() with --connected) and prints
 * {"reply": ..., "from": "<source of the reply as recvmsg reports it>", "peername": ...}.
 * dns-udp / dns-tcp ask one real DNS question (dns-wire.ts) and print {"reply": <the
 * greeting in the TXT answer>, "answer": "dns", "from" (udp), "peername", ...}. A TCP
 * server that greets instead of answering (the proxy's outbound listener) gives
 * "answer": "greeting" with its greeting as the reply: where the query landed is the
 * point.
 * Failures print {"error": "..."} and exit 1. Everything is bounded by --timeout.
 */
import { createSocket, type RemoteInfo } from 'node:dgram';
import { connect } from 'node:net';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { dnsAnswerText, dnsQuery, tcpFrame, tcpUnframe } from './dns-wire.js';
import { emit, hostPort } from './wire.js';

function fail(message: string): never {
  emit({ error: message });
  process.exit(1);
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return { raw: text };
  }
}

function probeTcp(host: string, port: number, local: string | undefined, hold: boolean, timeoutMs: number): void {
  const socket = connect({ host, port, localAddress: local });
  const timer = setTimeout(() => fail(`timeout after ${timeoutMs} ms (tcp ${hostPort(host, port)})`), timeoutMs);
  socket.on('error', (e) => fail(`tcp ${hostPort(host, port)}: ${e.message}`));
  let buffered = '';
  let greeted = false;
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    buffered += chunk;
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      if (!greeted) {
        greeted = true;
        clearTimeout(timer);
        emit({
          reply: parseJson(line),
          peername: hostPort(socket.remoteAddress, socket.remotePort),
          sockname: hostPort(socket.localAddress, socket.localPort),
        });
        if (!hold) {
          socket.end();
          socket.destroySoon();
          return;
        }
        startHolding(socket);
      } else {
        emit({ echo: line });
      }
    }
  });
  socket.on('close', () => {
    if (!greeted) fail(`tcp ${hostPort(host, port)}: closed before the greeting`);
    if (hold) emit({ closed: true });
    process.exit(0);
  });
}

function startHolding(socket: ReturnType<typeof connect>): void {
  const rl = createInterface({ input: process.stdin });
  rl.on('line', (line) => socket.write(`${line}\n`));
  rl.on('close', () => socket.end());
}

/** Fresh per probe, so an answer to someone else's query is told apart. */
const DNS_ID = process.pid & 0xffff;

function probeUdp(host: string, port: number, connected: boolean, dns: boolean, timeoutMs: number): void {
  const socket = createSocket(host.includes(':') ? 'udp6' : 'udp4');
  const what = `${dns ? 'dns-' : ''}udp ${hostPort(host, port)}${connected ? ' connected' : ''}`;
  const timer = setTimeout(() => fail(`timeout after ${timeoutMs} ms (${what})`), timeoutMs);
  socket.on('error', (e) => fail(`${what}: ${e.message}`));
  socket.on('message', (msg: Buffer, rinfo: RemoteInfo) => {
    clearTimeout(timer);
    let peername: string | null = null;
    if (connected) {
      const peer = socket.remoteAddress();
      peername = hostPort(peer.address, peer.port);
    }
    let text: string;
    try {
      text = dns ? dnsAnswerText(msg, DNS_ID) : msg.toString('utf8');
    } catch (e) {
      fail(`${what}: ${(e as Error).message}`);
    }
    emit({ reply: parseJson(text), ...(dns ? { answer: 'dns' } : {}), from: hostPort(rinfo.address, rinfo.port), peername });
    socket.close();
  });
  const query = dns ? dnsQuery(DNS_ID) : Buffer.from('tpctl-probe');
  if (connected) {
    socket.connect(port, host, () => socket.send(query));
  } else {
    socket.send(query, port, host);
  }
}

function probeDnsTcp(host: string, port: number, timeoutMs: number): void {
  const what = `dns-tcp ${hostPort(host, port)}`;
  const socket = connect({ host, port });
  const timer = setTimeout(() => fail(`timeout after ${timeoutMs} ms (${what})`), timeoutMs);
  socket.on('error', (e) => fail(`${what}: ${e.message}`));
  socket.on('connect', () => socket.write(tcpFrame(dnsQuery(DNS_ID))));
  let buffered = Buffer.alloc(0);
  const done = (reply: unknown, answer: 'dns' | 'greeting'): void => {
    clearTimeout(timer);
    emit({ reply, answer, peername: hostPort(socket.remoteAddress, socket.remotePort), sockname: hostPort(socket.localAddress, socket.localPort) });
    socket.destroy();
    process.exit(0);
  };
  socket.on('data', (data: Buffer) => {
    buffered = Buffer.concat([buffered, data]);
    // A DNS answer's length prefix begins with '{' (0x7b) only past 31 KiB; these are far
    // smaller, so a '{' is a greeting line.
    if (buffered[0] === 0x7b) {
      const nl = buffered.indexOf(0x0a);
      if (nl >= 0) done(parseJson(buffered.subarray(0, nl).toString('utf8')), 'greeting');
      return;
    }
    const msg = tcpUnframe(buffered);
    if (!msg) return;
    try {
      done(parseJson(dnsAnswerText(msg, DNS_ID)), 'dns');
    } catch (e) {
      fail(`${what}: ${(e as Error).message}`);
    }
  });
  socket.on('close', () => fail(`${what}: closed before an answer`));
}

function main(): void {
  const { values, positionals } = parseArgs({
    options: {
      host: { type: 'string' },
      port: { type: 'string' },
      local: { type: 'string' },
      hold: { type: 'boolean', default: false },
      connected: { type: 'boolean', default: false },
      timeout: { type: 'string', default: '3000' },
    },
    allowPositionals: true,
    strict: true,
  });
  const mode = positionals[0];
  const host = values.host;
  const port = Number(values.port);
  const timeoutMs = Number(values.timeout);
  if (!host || !Number.isInteger(port)) fail('usage: probe tcp|udp|dns-udp|dns-tcp --host IP --port N');
  if (mode === 'tcp') probeTcp(host, port, values.local, values.hold ?? false, timeoutMs);
  else if (mode === 'udp' || mode === 'dns-udp') probeUdp(host, port, values.connected ?? false, mode === 'dns-udp', timeoutMs);
  else if (mode === 'dns-tcp') probeDnsTcp(host, port, timeoutMs);
  else fail(`unknown mode ${JSON.stringify(mode)} (tcp, udp, dns-udp or dns-tcp)`);
}

main();
