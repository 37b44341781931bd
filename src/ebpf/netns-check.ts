/**
 * How the sockops program tells that a new listener belongs to tpctl's network
 * namespace (sockops.bpf.c): cgroup hooks run for sockets of every namespace, and
 * only a listener of tpctl's own may become the inbound listener sk_lookup hands
 * connections to. Two programs do the same job with different kernel features; the
 * install probes the kernel (not its version number) and loads one of them:
 *
 *   cookie  tp_sockops      bpf_get_netns_cookie() in sockops (Linux 5.15+); tp_netns_v1
 *                           holds the namespace's cookie (SO_NETNS_COOKIE, 5.14+).
 *   inode   tp_sockops_ino  the namespace's inode number, read from the socket through
 *                           the kernel's BTF (bpf_skc_to_tcp_sock in sockops, 5.10+ with
 *                           CONFIG_DEBUG_INFO_BTF); tp_netns_v1 holds stat(/proc/self/ns/net).ino.
 *
 * Both are as strict: a listener of any other namespace is never registered.
 */
import { existsSync, statSync } from 'node:fs';
import { KernelTooOldError } from '../errors.js';
import { netnsCookie } from '../host/libc.js';
import { BPF_FUNC, BPF_PROG_TYPE, probeHelper } from './libbpf.js';
import type { NetnsCheck } from './spec.js';

const KERNEL_BTF = '/sys/kernel/btf/vmlinux';

/** Which check this kernel supports; KernelTooOldError (one line) when neither. */
export function probeNetnsCheck(): NetnsCheck {
  if (probeHelper(BPF_PROG_TYPE.SOCK_OPS, BPF_FUNC.get_netns_cookie)) return 'cookie';
  if (existsSync(KERNEL_BTF) && probeHelper(BPF_PROG_TYPE.SOCK_OPS, BPF_FUNC.skc_to_tcp_sock)) return 'inode';
  throw new KernelTooOldError(
    'eBPF transparent proxy: the kernel can tell the network namespace of a listener neither by cookie (bpf_get_netns_cookie in sockops, Linux 5.15) nor through BTF (bpf_skc_to_tcp_sock in sockops and ' +
      `${KERNEL_BTF}, Linux 5.10 with CONFIG_DEBUG_INFO_BTF)`,
    { hint: 'use a kernel built with CONFIG_DEBUG_INFO_BTF, or the iptables engine (omit --ebpf-enabled)' },
  );
}

/** The value tp_netns_v1 must hold for `check` in this process's network namespace. */
export function netnsIdentity(check: NetnsCheck): bigint {
  return check === 'cookie' ? netnsCookie() : statSync('/proc/self/ns/net', { bigint: true }).ino;
}
