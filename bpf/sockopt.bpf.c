// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * sockopt.bpf.c — answers getsockopt(SO_ORIGINAL_DST) for the proxy, which is how
 * Envoy (and any iptables-era proxy) recovers where a captured connection was going.
 *
 * The hook runs after the kernel's own getsockopt; with no conntrack entry that one
 * failed, so a non-zero ctx->retval is the cue to answer. Two kinds of socket:
 *   - redirected by connect4/6: accepted on the outbound listener (local port ==
 *     outbound_port, or dns_port for DNS over TCP), or on the inbound listener at a
 *     loopback address (the proxy's own connection to a local address); its peer is
 *     the connecting socket's end, which sockops recorded in tp_flow_v1;
 *   - inbound: steered by the tc program with bpf_sk_assign, so no address was ever
 *     rewritten: its local address (an instance IP) is the original destination.
 *
 * The answer's format follows the level asked: SOL_IP → struct sockaddr_in (IPv4
 * answers only), SOL_IPV6 → struct sockaddr_in6 (an IPv4 answer as ::ffff:a.b.c.d).
 */
#include "helpers.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/*
 * optlen and retval are adjacent 4-byte context fields; clang merges two plain stores
 * into one 8-byte store, which the verifier rejects ("invalid bpf_context access
 * off=32 size=8"). Volatile stores are never merged.
 */
static __always_inline void set_result(struct bpf_sockopt *ctx, __s32 optlen)
{
	*(volatile __s32 *)&ctx->optlen = optlen;
	*(volatile __s32 *)&ctx->retval = 0;
}

static __always_inline int answer_ip(struct bpf_sockopt *ctx, const struct tp_addr *a)
{
	struct sockaddr_in *sin = ctx->optval;

	if (a->family != TP_AF_INET)
		return TP_ALLOW;
	if ((void *)(sin + 1) > ctx->optval_end)
		return TP_ALLOW;
	__builtin_memset(sin, 0, sizeof(*sin));
	sin->sin_family = TP_AF_INET;
	sin->sin_port = a->port;
	sin->sin_addr.s_addr = a->ip[0];
	set_result(ctx, sizeof(*sin));
	return TP_ALLOW;
}

static __always_inline int answer_ipv6(struct bpf_sockopt *ctx, const struct tp_addr *a)
{
	struct sockaddr_in6 *sin6 = ctx->optval;

	if ((void *)(sin6 + 1) > ctx->optval_end)
		return TP_ALLOW;
	__builtin_memset(sin6, 0, sizeof(*sin6));
	sin6->sin6_family = TP_AF_INET6;
	sin6->sin6_port = a->port;
	if (a->family == TP_AF_INET) {
		sin6->sin6_addr.in6_u.u6_addr32[2] = bpf_htonl(0x0000ffff);
		sin6->sin6_addr.in6_u.u6_addr32[3] = a->ip[0];
	} else {
		tp_ip6_copy(sin6->sin6_addr.in6_u.u6_addr32, a->ip);
	}
	set_result(ctx, sizeof(*sin6));
	return TP_ALLOW;
}

SEC("cgroup/getsockopt")
int tp_getsockopt(struct bpf_sockopt *ctx)
{
	struct bpf_sock *sk = ctx->sk;
	struct tp_config *cfg;
	struct tp_flow_key peer;
	struct tp_addr local, remote;
	struct tp_addr *answer = 0;
	__s32 level = ctx->level;

	if (ctx->optname != TP_SO_ORIGINAL_DST ||
	    (level != TP_SOL_IP && level != TP_SOL_IPV6))
		return TP_ALLOW;
	if (ctx->retval == 0) /* the kernel (conntrack) already answered */
		return TP_ALLOW;
	cfg = tp_config();
	if (!cfg || !sk || sk->protocol != IPPROTO_TCP)
		return TP_ALLOW;

	/* bpf_sock: src_port is host order, dst_port network order */
	if (sk->family == TP_AF_INET) {
		tp_addr4(&remote, sk->dst_ip4, sk->dst_port);
		tp_addr4(&local, sk->src_ip4, bpf_htons((__u16)sk->src_port));
	} else if (sk->family == TP_AF_INET6) {
		tp_addr6(&remote, sk->dst_ip6[0], sk->dst_ip6[1], sk->dst_ip6[2],
			 sk->dst_ip6[3], sk->dst_port);
		tp_addr6(&local, sk->src_ip6[0], sk->src_ip6[1], sk->src_ip6[2],
			 sk->src_ip6[3], bpf_htons((__u16)sk->src_port));
	} else {
		return TP_ALLOW;
	}

	if (sk->src_port != 0 &&
	    (sk->src_port == cfg->outbound_port || sk->src_port == cfg->dns_port ||
	     /* the proxy's own connection redirected by connect4/6 to a local address; a
	      * tc-steered inbound socket is never here (its local address is an instance IP) */
	     (sk->src_port == cfg->inbound_port && tp_is_local(&local)))) {
		tp_flow_key(&peer, &remote);
		answer = bpf_map_lookup_elem(&tp_flow_v1, &peer);
	}
	if (!answer && tp_is_instance(cfg, &local))
		answer = &local;
	if (!answer)
		return TP_ALLOW;

	if (level == TP_SOL_IP)
		return answer_ip(ctx, answer);
	return answer_ipv6(ctx, answer);
}
