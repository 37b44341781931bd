/**
 * A one-shot client for the sandbox, run as some uid inside a host of it:
 *
 *   node dist/sandbox/probe.js tcp --host IP --port P [--local IP] [--hold]
 *   node dist/sandbox/probe.js udp --host IP --port 53 [--connected]
 *
 * tcp prints {"reply": <server's greeting>, "peername": "ip:port", "sockname": "ip:port"};
 * peername is getpeername() as the application sees it. With --hold it then sends
 * every stdin line and prints {"echo": "<line>"} for each line echoed back, until
 * stdin closes.
 * udp sends one datagram (after connect() with --connected) and prints
 * {"reply": ..., "from": "<source of the reply as recvmsg reports it>", "peername": ...}.
 * Failures print {"error": "..."} and exit 1. Everything is bounded by --timeout.
 */
import { createSocket, type RemoteInfo } from 'node:dgram';
import { connect } from 'node:net';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
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

function probeUdp(host: string, port: number, connected: boolean, timeoutMs: number): void {
  const socket = createSocket(host.includes(':') ? 'udp6' : 'udp4');
  const timer = setTimeout(() => fail(`timeout after ${timeoutMs} ms (udp ${hostPort(host, port)}${connected ? ' connected' : ''})`), timeoutMs);
  socket.on('error', (e) => fail(`udp ${hostPort(host, port)}: ${e.message}`));
  socket.on('message', (msg: Buffer, rinfo: RemoteInfo) => {
    clearTimeout(timer);
    let peername: string | null = null;
    if (connected) {
      const peer = socket.remoteAddress();
      peername = hostPort(peer.address, peer.port);
    }
    emit({ reply: parseJson(msg.toString('utf8')), from: hostPort(rinfo.address, rinfo.port), peername });
    socket.close();
  });
  const query = Buffer.from('tpctl-probe');
  if (connected) {
    socket.connect(port, host, () => socket.send(query));
  } else {
    socket.send(query, port, host);
  }
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
  if (!host || !Number.isInteger(port)) fail('usage: probe tcp|udp --host IP --port N');
  if (mode === 'tcp') probeTcp(host, port, values.local, values.hold ?? false, timeoutMs);
  else if (mode === 'udp') probeUdp(host, port, values.connected ?? false, timeoutMs);
  else fail(`unknown mode ${JSON.stringify(mode)} (tcp or udp)`);
}

main();
