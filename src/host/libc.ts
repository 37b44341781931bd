/**
 * The few libc socket calls Node does not expose. Today that is getsockopt, used to
 * read SO_ORIGINAL_DST from a socket a transparent proxy accepted (the test proxy
 * in src/sandbox uses it; a real proxy — Envoy — does the same in C++).
 *
 * The binding is made on first use through src/ffi.ts, so importing this module
 * has no side effects.
 */
import { isIPv4 } from 'node:net';
import { endianness } from 'node:os';
import { formatAddress } from '../net/address.js';
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

/**
 * getsockopt(fd, level, optname) into a buffer of `size` bytes; returns the bytes
 * written. `into`: buffers to reuse (the result is then a view of `into.optval`,
 * valid until the next call with it).
 */
export function getsockoptBytes(fd: number, level: number, optname: number, size: number, into?: { optval: Buffer; optlen: Buffer }): Buffer {
  const optval = into?.optval ?? Buffer.alloc(size);
  const optlen = into?.optlen ?? Buffer.alloc(4);
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

const origDstScratch = { optval: Buffer.alloc(SOCKADDR_STORAGE_SIZE), optlen: Buffer.alloc(4) };

/**
 * The destination a connection had before it was redirected, as SO_ORIGINAL_DST
 * reports it. `socketAddress` is the socket's local address: it tells which
 * family (level) to ask. Throws SyscallError (typically ENOENT) when nobody knows.
 */
export function originalDestination(fd: number, socketAddress: string): SocketAddress {
  const level = isIPv4(socketAddress) || socketAddress.startsWith('::ffff:') ? SOL_IP : SOL_IPV6;
  // A proxy asks once per connection: the buffers are reused (parseSockaddr copies out).
  return parseSockaddr(getsockoptBytes(fd, level, SO_ORIGINAL_DST, SOCKADDR_STORAGE_SIZE, origDstScratch));
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

// ---- sockets of other processes, and the network namespace's identity ---------

/* Generic syscall numbers (include/uapi/asm-generic/unistd.h), the same on x86_64 and arm64. */
const SYS_PIDFD_OPEN = 434;
const SYS_PIDFD_GETFD = 438;
const SOL_SOCKET = 1;
const SO_NETNS_COOKIE = 71;
const SOCK_DGRAM = 2;

type VariadicFn = (...args: unknown[]) => number | bigint;
let syscallFn: VariadicFn | undefined;
type SocketFn = (domain: number, type: number, protocol: number) => number;
let socketFn: SocketFn | undefined;
let closeFn: ((fd: number) => number) | undefined;

function syscall(nr: number, ...typedArgs: unknown[]): number {
  syscallFn ??= loadLibrary('libc.so.6').func('long syscall(long number, ...)') as VariadicFn;
  return Number(syscallFn(nr, ...typedArgs));
}

function closeFd(fd: number): void {
  closeFn ??= loadLibrary('libc.so.6').func('int close(int fd)') as (fd: number) => number;
  closeFn(fd);
}

/**
 * A duplicate, in this process, of file descriptor `fd` of process `pid`
 * (pidfd_open + pidfd_getfd, Linux 5.6; needs ptrace rights over it, which root has).
 * The caller closes it.
 */
export function duplicateFd(pid: number, fd: number): number {
  const pidfd = syscall(SYS_PIDFD_OPEN, 'int', pid, 'unsigned int', 0);
  if (pidfd < 0) throw new SyscallError(`pidfd_open(${pid})`, koffi.errno());
  try {
    const dup = syscall(SYS_PIDFD_GETFD, 'int', pidfd, 'int', fd, 'unsigned int', 0);
    if (dup < 0) throw new SyscallError(`pidfd_getfd(${pid}, ${fd})`, koffi.errno());
    return dup;
  } finally {
    closeFd(pidfd);
  }
}


/** The cookie of this process's network namespace (SO_NETNS_COOKIE, Linux 5.14), as BPF's bpf_get_netns_cookie returns it. */
export function netnsCookie(): bigint {
  socketFn ??= loadLibrary('libc.so.6').func('int socket(int domain, int type, int protocol)') as SocketFn;
  let sock = socketFn(AF_INET, SOCK_DGRAM, 0);
  if (sock < 0) sock = socketFn(AF_INET6, SOCK_DGRAM, 0);
  if (sock < 0) throw new SyscallError('socket', koffi.errno());
  try {
    const v = getsockoptBytes(sock, SOL_SOCKET, SO_NETNS_COOKIE, 8);
    if (v.length !== 8) throw new Error(`getsockopt(SO_NETNS_COOKIE): ${v.length} bytes`);
    return endianness() === 'LE' ? v.readBigUInt64LE(0) : v.readBigUInt64BE(0);
  } finally {
    closeFd(sock);
  }
}
