/**
 * The proxy's inbound listener for the sk_lookup program (tp_listener_v1, a SOCKMAP).
 *
 * A listener that starts after the install is registered by the sockops program at
 * listen(). One that already listens when tpctl installs (the proxy started first, or
 * a reinstall) never passes through that hook, so the controller registers it: it
 * finds the LISTEN sockets on the inbound port in /proc/self/net/tcp{,6} (this network
 * namespace only), finds which process holds each one (/proc/PID/fd), takes a
 * duplicate of the descriptor (pidfd_getfd) and writes it into the map, which stores
 * the socket itself. The duplicate is closed right after; the map keeps no process
 * alive and drops the socket when its owner closes it.
 */
import { closeSync, readFileSync, readdirSync, readlinkSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { duplicateFd } from '../host/libc.js';
import { u32Key, u64Value } from './codecs.js';
import { TP_LISTENER_INET, TP_LISTENER_INET6 } from './abi.js';
import { LibbpfError } from '../errors.js';
import { EINVAL, mapDelete, mapUpdate, objGet } from './libbpf.js';
import { mapPinPath } from './maps.js';

/** Keys of tp_listener_v1 (abi.h TP_LISTENER_INET / TP_LISTENER_INET6). */
export const LISTENER_KEY = { ipv4: TP_LISTENER_INET, ipv6: TP_LISTENER_INET6 } as const;

const TCP_LISTEN = '0A';

export interface ListenSocket {
  family: 'ipv4' | 'ipv6';
  port: number;
  uid: number;
  inode: number;
}

/** LISTEN sockets on the wildcard address in one /proc/net/tcp{,6} text. */
export function parseProcNetTcp(text: string, family: ListenSocket['family']): ListenSocket[] {
  const out: ListenSocket[] = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10 || f[3] !== TCP_LISTEN) continue;
    const [addressHex = '', portHex = ''] = f[1]!.split(':');
    // Only the wildcard address (0.0.0.0 / ::), as sockops registers (sockops.bpf.c).
    if (!/^0+$/.test(addressHex)) continue;
    const port = parseInt(portHex, 16);
    const uid = Number(f[7]);
    const inode = Number(f[9]);
    if (!Number.isInteger(port) || !Number.isInteger(inode) || inode === 0) continue;
    out.push({ family, port, uid, inode });
  }
  return out;
}

function readOrEmpty(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/**
 * The listeners on `port` in this network namespace, one per family: the proxy
 * uid's when it has one (as sockops would have seen it listen last), else any.
 */
export function findListeners(port: number, proxyUid: number): ListenSocket[] {
  const all = [
    ...parseProcNetTcp(readOrEmpty('/proc/self/net/tcp'), 'ipv4'),
    ...parseProcNetTcp(readOrEmpty('/proc/self/net/tcp6'), 'ipv6'),
  ].filter((s) => s.port === port);
  const chosen: ListenSocket[] = [];
  for (const family of ['ipv4', 'ipv6'] as const) {
    const of = all.filter((s) => s.family === family);
    const pick = of.find((s) => s.uid === proxyUid) ?? of[0];
    if (pick) chosen.push(pick);
  }
  return chosen;
}

/**
 * (pid, fd) holding each listener's socket, found by walking /proc/PID/fd: first the
 * processes of the uids that own the sockets (a stat per process: on a busy host
 * reading every process's descriptors is ~20 ms of an install), then, for a socket
 * handed to another uid's process, every other process.
 */
function socketHolders(listeners: ListenSocket[]): Map<number, { pid: number; fd: number }> {
  const inodes = new Set(listeners.map((l) => l.inode));
  const uids = new Set(listeners.map((l) => l.uid));
  const found = new Map<number, { pid: number; fd: number }>();
  if (inodes.size === 0) return found;
  const pids = readdirSync('/proc').filter((p) => /^\d+$/.test(p));
  const owned = pids.filter((pid) => {
    try {
      return uids.has(statSync(join('/proc', pid)).uid);
    } catch {
      return false; // exited
    }
  });
  const ownedSet = new Set(owned);
  for (const pid of [...owned, ...pids.filter((p) => !ownedSet.has(p))]) {
    if (found.size === inodes.size) break;
    scanFds(pid, inodes, found);
  }
  return found;
}

function scanFds(pidText: string, inodes: Set<number>, found: Map<number, { pid: number; fd: number }>): void {
  const dir = join('/proc', pidText, 'fd');
  let fds: string[];
  try {
    fds = readdirSync(dir);
  } catch {
    return; // the process exited, or is a kernel thread
  }
  for (const fd of fds) {
    let target: string;
    try {
      target = readlinkSync(join(dir, fd));
    } catch {
      continue;
    }
    const m = /^socket:\[(\d+)\]$/.exec(target);
    const inode = m ? Number(m[1]) : NaN;
    if (inodes.has(inode) && !found.has(inode)) found.set(inode, { pid: Number(pidText), fd: Number(fd) });
  }
}

/** Empties one slot; an empty SOCKMAP slot answers delete with EINVAL, not ENOENT. */
function clearSlot(mapFd: number, key: number): void {
  try {
    mapDelete(mapFd, u32Key.encode(key));
  } catch (e) {
    if (!(e instanceof LibbpfError) || e.errno !== EINVAL) throw e;
  }
}

/**
 * Writes the current listeners on `port` into tp_listener_v1. Returns one line per
 * listener (registered, or why not). A listener whose process vanished meanwhile is
 * skipped (the next one to listen registers itself through sockops).
 */
export function registerListeners(bpffsPath: string, port: number, proxyUid: number): string[] {
  const listeners = findListeners(port, proxyUid);
  const holders = socketHolders(listeners);
  const mapFd = objGet(mapPinPath(bpffsPath, 'tp_listener_v1'));
  const lines: string[] = [];
  try {
    for (const family of ['ipv4', 'ipv6'] as const) {
      // A socket listening on another port (the inbound port changed) must not stay.
      if (!listeners.some((l) => l.family === family)) clearSlot(mapFd, LISTENER_KEY[family]);
    }
    for (const l of listeners) {
      const holder = holders.get(l.inode);
      if (!holder) continue; // closed meanwhile
      let dup: number;
      try {
        dup = duplicateFd(holder.pid, holder.fd);
      } catch (e) {
        lines.push(
          `inbound listener on port ${port} (${l.family}, pid ${holder.pid}) not registered (${(e as Error).message}): ` +
            'inbound connections are refused until the proxy listens again',
        );
        continue;
      }
      try {
        mapUpdate(mapFd, u32Key.encode(LISTENER_KEY[l.family]), u64Value.encode(BigInt(dup)));
      } finally {
        closeSync(dup);
      }
      lines.push(`inbound listener on port ${port} (${l.family}, pid ${holder.pid}, uid ${l.uid}) registered for sk_lookup`);
    }
  } finally {
    closeSync(mapFd);
  }
  return lines;
}
