// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * sk_lookup.bpf.c — inbound capture that fails closed, attached to the network
 * namespace (Linux 5.9+).
 *
 * The kernel runs this program when a TCP segment found no established socket and it
 * is about to look for a listener: after defragmentation, after IPv6 extension
 * headers, for every local address (instance IP, link-local, a second address on any
 * interface). That is where iptables' PREROUTING REDIRECT also sees the packet, and
 * why the tc program alone was not enough: tc sees raw frames on one interface, before
 * reassembly, and only parses a plain IP + TCP header.
 *
 * For a connection that must go through the proxy, the program hands the lookup to
 * the proxy's inbound listener (tp_listener_v1, filled by sockops at listen() and by
 * the controller at install). The TCP stack then builds the connection with the
 * packet's own addresses: the accepted socket's local address is the original
 * destination, the client's address is kept (as with the tc program). When there is
 * no listener, or the kernel refuses the assignment, the lookup is dropped (SK_DROP:
 * the client gets a reset): nothing reaches an application port around the proxy.
 *
 * Left to the normal lookup (SK_PASS without a socket):
 *   - UDP (inbound capture is TCP only, as in the iptables engine);
 *   - a family not captured (--ip-family-mode ipv4), inbound capture off;
 *   - the inbound port itself, excluded inbound ports, excluded sources;
 *   - connections made on this host: from a loopback source (127.0.0.0/8, ::1, and
 *     the IPv4-compatible ::/96 range that holds Envoy's passthrough source ::6),
 *     from the very address they go to (an unbound socket dialling a local address
 *     gets that address as its source: the app → own instance IP row of the
 *     behaviour table), or from an instance IP to a loopback address (what connect4/6
 *     make of a redirected connection). A remote peer can claim such a source only
 *     blindly (the SYN-ACK goes to this host), so it never completes a handshake;
 *     a loopback destination alone proves nothing (net.ipv4.conf.*.route_localnet
 *     lets remote packets reach 127.0.0.0/8).
 *
 * Counters: every decision on a remote peer's connection (steered, excluded port,
 * excluded source, refused for want of a listener); connections made on this host are
 * the sock_addr programs' to count. The lookups of bpf_sk*_lookup_* helpers run this
 * program too: tc.bpf.c orders its lookups so each new SYN is counted once.
 *
 * Context fields used exist since 5.9 (family, protocol, remote/local ip, local_port);
 * ingress_ifindex (5.17) is not needed.
 */
#include "helpers.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* <linux/bpf.h> has the enum sk_action values only for sk_skb; spelled here. */
#define TP_SK_DROP 0
#define TP_SK_PASS 1

static __always_inline int local_origin4(const struct bpf_sk_lookup *ctx,
					 const struct tp_config *cfg)
{
	__u32 remote = ctx->remote_ip4;

	if (tp_is_loopback4(remote) || remote == ctx->local_ip4)
		return 1;
	/* an application's redirected connection: bound to the instance IP by
	 * connect4, sent to a listener on 127.0.0.1 */
	return tp_is_loopback4(ctx->local_ip4) && cfg->instance_ip4 != 0 &&
	       remote == cfg->instance_ip4;
}

static __always_inline int local_origin6(const struct bpf_sk_lookup *ctx,
					 const struct tp_config *cfg)
{
	__u32 r[4] = { ctx->remote_ip6[0], ctx->remote_ip6[1], ctx->remote_ip6[2],
		       ctx->remote_ip6[3] };
	__u32 l[4] = { ctx->local_ip6[0], ctx->local_ip6[1], ctx->local_ip6[2],
		       ctx->local_ip6[3] };

	/* ::/96: ::1 (loopback) and ::6 (Envoy's inbound passthrough source) */
	if (r[0] == 0 && r[1] == 0 && r[2] == 0)
		return 1;
	if (tp_ip6_eq(r, l))
		return 1;
	/* as local_origin4: bound to the instance IP by connect6, sent to ::1 */
	return tp_is_local6(l) && tp_has_ip6(cfg->instance_ip6) && tp_ip6_eq(r, cfg->instance_ip6);
}

static __always_inline int source_excluded(const struct bpf_sk_lookup *ctx, int v6)
{
	if (!v6) {
		struct tp_lpm4_key k = { .prefixlen = 32, .addr = ctx->remote_ip4 };

		return bpf_map_lookup_elem(&tp_in_cidr4_v1, &k) != 0;
	}
	struct tp_lpm6_key k = { .prefixlen = 128 };

	k.addr[0] = ctx->remote_ip6[0];
	k.addr[1] = ctx->remote_ip6[1];
	k.addr[2] = ctx->remote_ip6[2];
	k.addr[3] = ctx->remote_ip6[3];
	return bpf_map_lookup_elem(&tp_in_cidr6_v1, &k) != 0;
}

/* Hands the lookup to the listener of the packet's family (IPv4 falls back to a
 * dual-stack IPv6 listener; the kernel refuses an IPV6_V6ONLY one). */
static __always_inline int to_listener(struct bpf_sk_lookup *ctx, int v6)
{
	__u32 key = v6 ? TP_LISTENER_INET6 : TP_LISTENER_INET;
	struct bpf_sock *sk;
	long err;

	sk = bpf_map_lookup_elem(&tp_listener_v1, &key);
	if (!sk && !v6) {
		key = TP_LISTENER_INET6;
		sk = bpf_map_lookup_elem(&tp_listener_v1, &key);
	}
	if (!sk)
		return TP_COUNTED(TP_STAT_NO_LISTENER, TP_SK_DROP);
	err = bpf_sk_assign(ctx, sk, 0);
	bpf_sk_release(sk);
	if (err)
		return TP_COUNTED(TP_STAT_NO_LISTENER, TP_SK_DROP);
	return TP_COUNTED(TP_STAT_INBOUND, TP_SK_PASS);
}

SEC("sk_lookup")
int tp_sk_lookup(struct bpf_sk_lookup *ctx)
{
	struct tp_config *cfg = tp_config();
	__u16 port;
	int v6;

	if (!cfg || !(cfg->flags & TP_F_INBOUND) || cfg->inbound_port == 0)
		return TP_SK_PASS;
	if (ctx->protocol != IPPROTO_TCP)
		return TP_SK_PASS;
	if (ctx->family == TP_AF_INET)
		v6 = 0;
	else if (ctx->family == TP_AF_INET6)
		v6 = 1;
	else
		return TP_SK_PASS;
	if (!tp_family_on(cfg, v6 ? TP_AF_INET6 : TP_AF_INET))
		return TP_SK_PASS;

	port = (__u16)ctx->local_port;
	if (port == cfg->inbound_port)
		return TP_SK_PASS;
	/* before the exclusions, so that only remote peers' connections are counted */
	if (v6 ? local_origin6(ctx, cfg) : local_origin4(ctx, cfg))
		return TP_SK_PASS;
	if (bpf_map_lookup_elem(&tp_in_port_v1, &port))
		return TP_COUNTED(TP_STAT_EXCL_IN_PORT, TP_SK_PASS);
	if (source_excluded(ctx, v6))
		return TP_COUNTED(TP_STAT_EXCL_IN_ADDR, TP_SK_PASS);
	return to_listener(ctx, v6);
}
