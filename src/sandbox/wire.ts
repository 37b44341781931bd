/**
 * What the sandbox servers and probes say to each other: one JSON object per line.
 * Addresses are written `ip:port`, IPv6 as `[ip]:port`.
 */
import { createSocket, type RemoteInfo } from 'node:dgram';
import { createServer, type Socket } from 'node:net';
import { dnsAnswer, tcpFrame, tcpUnframe } from './dns-wire.js';

export function hostPort(address: string | undefined, port: number | undefined): string {
  if (address === undefined || port === undefined) return '?';
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

/** The ip part of `ip:port` / `[ip]:port`. */
export function ipOf(endpoint: string): string {
  const m = /^\[(.*)\]:\d+$/.exec(endpoint) ?? /^(.*):\d+$/.exec(endpoint);
  return m?.[1] ?? endpoint;
}

/** Comma list of ports (`8080,8081`) → numbers; empty string → []. */
export function parsePorts(list: string | undefined): number[] {
  if (!list) return [];
  return list.split(',').filter(Boolean).map((p) => {
    const n = Number(p);
    if (!Number.isInteger(n) || n < 1 || n > 65535) throw new Error(`bad port ${JSON.stringify(p)}`);
    return n;
  });
}

/**
 * After the greeting line a server keeps the connection so a held connection can be
 * checked later: every line the peer sends is echoed back. The server closes when
 * the peer ends, or after an idle period.
 */
function echoUntilEnd(socket: Socket, idleMs = 60_000): void {
  socket.setTimeout(idleMs, () => socket.destroy());
  socket.on('data', (data) => socket.write(data));
  socket.on('end', () => socket.end());
  socket.on('error', () => socket.destroy());
}

/** A TCP listener that greets every connection with one JSON line, then echoes (echoUntilEnd). */
export function serveTcp(port: number, host: string, greeting: (socket: Socket) => unknown): Promise<void> {
  const server = createServer((socket) => {
    socket.on('error', () => socket.destroy());
    socket.write(`${JSON.stringify(greeting(socket))}\n`);
    echoUntilEnd(socket);
  });
  return new Promise((resolve, reject) => {
    server.once('error', (e) => reject(new Error(`listen tcp ${hostPort(host, port)}: ${e.message}`)));
    server.listen({ port, host, ipv6Only: host.includes(':') }, () => resolve());
  });
}

/**
 * A UDP socket bound to host:port that answers every datagram with one JSON object:
 * inside a TXT record when the datagram is a DNS query (dns-wire.ts), bare otherwise.
 */
export function serveUdp(port: number, host: string, answer: (from: RemoteInfo) => unknown): Promise<void> {
  const socket = createSocket(host.includes(':') ? 'udp6' : 'udp4');
  socket.on('message', (msg, from) => {
    const json = JSON.stringify(answer(from));
    socket.send(dnsAnswer(msg, json) ?? json, from.port, from.address);
  });
  return new Promise((resolve, reject) => {
    socket.once('error', (e) => reject(new Error(`bind udp ${hostPort(host, port)}: ${e.message}`)));
    socket.bind(port, host, () => resolve());
  });
}

/** A DNS-over-TCP listener: answers each framed query with its JSON greeting in a TXT record. */
export function serveDnsTcp(port: number, host: string, greeting: (socket: Socket) => unknown): Promise<void> {
  const server = createServer((socket) => {
    socket.on('error', () => socket.destroy());
    socket.setTimeout(60_000, () => socket.destroy());
    let buffered = Buffer.alloc(0);
    socket.on('data', (data: Buffer) => {
      buffered = Buffer.concat([buffered, data]);
      for (let query = tcpUnframe(buffered); query; query = tcpUnframe(buffered)) {
        buffered = buffered.subarray(2 + query.length);
        const answer = dnsAnswer(query, JSON.stringify(greeting(socket)));
        if (!answer) return socket.destroy();
        socket.write(tcpFrame(answer));
      }
    });
    socket.on('end', () => socket.end());
  });
  return new Promise((resolve, reject) => {
    server.once('error', (e) => reject(new Error(`listen tcp ${hostPort(host, port)}: ${e.message}`)));
    server.listen({ port, host, ipv6Only: host.includes(':') }, () => resolve());
  });
}

export function emit(obj: unknown): void {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

/**
 * Bounded life: a server exits by itself after `ms`, or as soon as its stdin closes —
 * the sandbox keeps a pipe to it, so a parent that dies (a killed test run) takes
 * its servers with it.
 */
export function exitAfter(ms: number): void {
  setTimeout(() => process.exit(0), ms).unref();
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('error', () => process.exit(0));
  process.stdin.resume();
}
