/**
 * The few libc socket calls Node does not expose. Today that is getsockopt, used to
 * read SO_ORIGINAL_DST from a socket a transparent proxy accepted (the test proxy
 * in src/sandbox uses it; a real proxy — Envoy — does the same in C++).
 *
 * The binding is made on first use through src/ffi.ts, so importing this module
 * has no side effects.
 */
import { isIPv4 } from 'node:net';
import { formatAddress } from '../config/net.js';
import { errnoName, koffi, loadLibrary } from '../ffi.js';

export const SOL_IP = 0;
export const SOL_IPV6 = 41;
/** SO_ORIGINAL_DST (linux/netfilter_ipv4.h) and IP6T_SO_ORIGINAL_DST share the number. */
export const SO_ORIGINAL_DST = 80;

const AF_INET = 2;
const AF_INET6 = 10;
const SOCKADDR_STORAGE_SIZE = 128;

type GetsockoptFn = (fd: number, level: number, optname: number, optval: Buffer, optlen: Buffer) => number;
let getsockoptFn: GetsockoptFn | undefined;

function getsockoptBinding(): GetsockoptFn {
  if (!getsockoptFn) {
    const libc = loadLibrary('libc.so.6');
    // Both pointers are passed as Buffers: koffi hands the buffer memory to C and
    // what libc writes there is visible to us afterwards.
    getsockoptFn = libc.func(
      'int getsockopt(int sockfd, int level, int optname, void *optval, void *optlen)',
    ) as GetsockoptFn;
  }
  return getsockoptFn;
}

/** A failed libc call, carrying errno (positive) and its name, e.g. ENOENT. */
export class SyscallError extends Error {
  readonly errno: number;
  readonly errnoName: string;
  constructor(op: string, errno: number) {
    const name = errnoName(errno);
    super(`${op}: ${name}`);
    this.name = 'SyscallError';
    this.errno = errno;
    this.errnoName = name;
  }
}

/** getsockopt(fd, level, optname) into a buffer of `size` bytes; returns the bytes written. */
export function getsockoptBytes(fd: number, level: number, optname: number, size: number): Buffer {
  const optval = Buffer.alloc(size);
  const optlen = Buffer.alloc(4);
  optlen.writeUInt32LE(size, 0);
  const rc = getsockoptBinding()(fd, level, optname, optval, optlen);
  if (rc !== 0) throw new SyscallError(`getsockopt(${level}, ${optname})`, koffi.errno());
  return optval.subarray(0, Math.min(size, optlen.readUInt32LE(0)));
}

export interface SocketAddress {
  address: string;
  port: number;
}

/** Decodes a struct sockaddr_in or sockaddr_in6 (family in host order, port in network order). */
export function parseSockaddr(buf: Buffer): SocketAddress {
  if (buf.length < 2) throw new Error(`sockaddr: ${buf.length} bytes is too short`);
  const family = buf.readUInt16LE(0);
  if (family === AF_INET && buf.length >= 8) {
    return { address: formatAddress({ family: 'ipv4', bytes: [...buf.subarray(4, 8)] }), port: buf.readUInt16BE(2) };
  }
  if (family === AF_INET6 && buf.length >= 24) {
    return { address: formatAddress({ family: 'ipv6', bytes: [...buf.subarray(8, 24)] }), port: buf.readUInt16BE(2) };
  }
  throw new Error(`sockaddr: unexpected family ${family} in ${buf.length} bytes`);
}

/**
 * The destination a connection had before it was redirected, as SO_ORIGINAL_DST
 * reports it. `socketAddress` is the socket's local address: it tells which
 * family (level) to ask. Throws SyscallError (typically ENOENT) when nobody knows.
 */
export function originalDestination(fd: number, socketAddress: string): SocketAddress {
  const level = isIPv4(socketAddress) || socketAddress.startsWith('::ffff:') ? SOL_IP : SOL_IPV6;
  return parseSockaddr(getsockoptBytes(fd, level, SO_ORIGINAL_DST, SOCKADDR_STORAGE_SIZE));
}

const LOCK_EX = 2;
const LOCK_NB = 4;
type FlockFn = (fd: number, operation: number) => number;
let flockFn: FlockFn | undefined;

/**
 * flock(fd, LOCK_EX | LOCK_NB): true when the lock was taken, false when another
 * open file description holds it. The kernel drops the lock when the holder exits,
 * however it exits, so there is never a stale lock to clean up.
 */
export function tryLockExclusive(fd: number): boolean {
  flockFn ??= loadLibrary('libc.so.6').func('int flock(int fd, int operation)') as FlockFn;
  if (flockFn(fd, LOCK_EX | LOCK_NB) === 0) return true;
  const errno = koffi.errno();
  if (errno === koffi.os.errno.EWOULDBLOCK || errno === koffi.os.errno.EAGAIN) return false;
  throw new SyscallError('flock', errno);
}
