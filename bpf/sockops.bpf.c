// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * sockops.bpf.c — bridges a redirected socket's cookie to the 4-tuple the proxy sees.
 *
 * connect4/6 could only key the original destination by socket cookie: the local
 * port is not chosen yet at connect time. TCP_CONNECT_CB runs right after the kernel
 * chose it, before the SYN is sent (so strictly before the proxy can accept the
 * connection): the local address and port are then exactly the peer the proxy's
 * accepted socket will report. cgroup/getsockopt answers SO_ORIGINAL_DST from
 * tp_flow_v1. Doing it there rather than at ACTIVE_ESTABLISHED_CB costs every TCP
 * connect in the cgroup one map lookup instead of two.
 *
 * A redirected socket also asks for state callbacks and its cookie entry is deleted
 * when it reaches CLOSE (a connect that fails included), where getpeername has
 * nothing to report anyway. tp_orig_dst_v1 then holds live sockets (plus UDP ones,
 * which have no close hook) and its LRU evicts nothing useful. tp_flow_v1 entries
 * stay: the proxy may still ask after the client has gone.
 *
 * TCP_LISTEN_CB (every listen() in the cgroup, no flag needed): a socket that starts
 * listening on the wildcard address, port inbound_port, in tpctl's network namespace
 * becomes the inbound listener
 * sk_lookup hands new connections to (tp_listener_v1; see sk_lookup.bpf.c). Any uid,
 * as under iptables, whose REDIRECT reaches whatever listens on that port.
 *
 * "In tpctl's network namespace" (cgroup hooks run for sockets of every namespace: an
 * ordinary user can unshare one and listen on inbound_port there) is checked against
 * tp_netns_v1 in one of two ways; the controller loads the program that fits the
 * kernel (a feature probe at install, src/ebpf/netns-check.ts):
 *   - tp_sockops: bpf_get_netns_cookie(), which sockops has since 5.15;
 *   - tp_sockops_ino: the namespace's inode number (what stat(/proc/self/ns/net)
 *     gives), read through the kernel's BTF from the socket (bpf_skc_to_tcp_sock and
 *     CO-RE field offsets, 5.9+ with CONFIG_DEBUG_INFO_BTF), for older kernels.
 *     A namespace's inode number is unique while it exists, and tpctl's exists
 *     while tpctl is installed in it.
 */
#include "helpers.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

static __always_inline void remember_flow(struct bpf_sock_ops *skops)
{
	struct tp_flow_key key;
	struct tp_addr local;
	struct tp_addr *orig;
	__u64 cookie = bpf_get_socket_cookie(skops);
	/* local_port is host order in bpf_sock_ops, the key wants network order */
	__u16 port = bpf_htons((__u16)skops->local_port);

	orig = bpf_map_lookup_elem(&tp_orig_dst_v1, &cookie);
	if (!orig)
		return;
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
	if (skops->family == TP_AF_INET)
		tp_addr4(&local, skops->local_ip4, port);
	else if (skops->family == TP_AF_INET6)
		tp_addr6(&local, skops->local_ip6[0], skops->local_ip6[1],
			 skops->local_ip6[2], skops->local_ip6[3], port);
	else
		return;
	tp_flow_key(&key, &local);
	bpf_map_update_elem(&tp_flow_v1, &key, orig, BPF_ANY);
}

/* Just the kernel fields the inode check reads; libbpf relocates their offsets
 * against the running kernel's BTF (the ___tp suffix keeps them apart from any real
 * definition and is ignored by CO-RE). */
struct ns_common___tp {
	unsigned int inum;
} __attribute__((preserve_access_index));

struct net___tp {
	struct ns_common___tp ns;
} __attribute__((preserve_access_index));

struct sock_common___tp {
	struct {
		struct net___tp *net;
	} skc_net;
} __attribute__((preserve_access_index));

struct sock___tp {
	struct sock_common___tp __sk_common;
} __attribute__((preserve_access_index));

static __always_inline __u64 netns_inode(struct bpf_sock_ops *skops)
{
	struct bpf_sock *sk = skops->sk;
	struct sock___tp *s;
	struct net___tp *net;

	if (!sk)
		return 0;
	/* a BTF pointer to the socket (struct sock starts struct tcp_sock) */
	s = (struct sock___tp *)bpf_skc_to_tcp_sock(sk);
	if (!s)
		return 0;
	net = s->__sk_common.skc_net.net;
	if (!net)
		return 0;
	return net->ns.inum;
}

/* by_inode: compare tp_netns_v1 with the namespace's inode number, not its cookie. */
static __always_inline void register_listener(struct bpf_sock_ops *skops, int by_inode)
{
	struct tp_config *cfg = tp_config();
	__u32 zero = 0, key;
	__u64 *netns;

	if (!cfg || cfg->inbound_port == 0 || skops->local_port != cfg->inbound_port)
		return;
	netns = bpf_map_lookup_elem(&tp_netns_v1, &zero);
	if (!netns || *netns == 0)
		return;
	if ((by_inode ? netns_inode(skops) : bpf_get_netns_cookie(skops)) != *netns)
		return;
	/* Only a listener on the wildcard address (0.0.0.0 / ::), like the one iptables'
	 * REDIRECT reaches: sk_lookup hands it connections for every local address, which a
	 * socket bound to one address (say [::1]:inbound_port) must not get. */
	if (skops->family == TP_AF_INET) {
		if (skops->local_ip4 != 0)
			return;
		key = TP_LISTENER_INET;
	} else if (skops->family == TP_AF_INET6) {
		if (skops->local_ip6[0] | skops->local_ip6[1] | skops->local_ip6[2] | skops->local_ip6[3])
			return;
		key = TP_LISTENER_INET6;
	} else {
		return;
	}
	bpf_sock_map_update(skops, &tp_listener_v1, &key, BPF_ANY);
}

static __always_inline int sockops(struct bpf_sock_ops *skops, int by_inode)
{
	__u64 cookie;

	switch (skops->op) {
	case BPF_SOCK_OPS_TCP_CONNECT_CB:
		remember_flow(skops);
		break;
	case BPF_SOCK_OPS_TCP_LISTEN_CB:
		register_listener(skops, by_inode);
		break;
	case BPF_SOCK_OPS_STATE_CB:
		/* args[1] is the new state; a CLOSEd socket has no peer to report */
		if (skops->args[1] == BPF_TCP_CLOSE) {
			cookie = bpf_get_socket_cookie(skops);
			bpf_map_delete_elem(&tp_orig_dst_v1, &cookie);
		}
		break;
	}
	return 1;
}

SEC("sockops")
int tp_sockops(struct bpf_sock_ops *skops)
{
	return sockops(skops, 0);
}

SEC("sockops")
int tp_sockops_ino(struct bpf_sock_ops *skops)
{
	return sockops(skops, 1);
}
