// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * sockopt.bpf.c — answers getsockopt(SO_ORIGINAL_DST) for the proxy, which is how
 * Envoy (and any iptables-era proxy) recovers where a captured connection was going.
 *
 * The hook runs after the kernel's own getsockopt. For a connection connect4/6
 * redirected, tp_flow_v1's record is the answer even when the kernel answered (with
 * conntrack on in the netns it reports the rewritten address, the listener);
 * otherwise a kernel answer stands and a failed one is the cue to answer. Two kinds
 * of socket:
 *   - redirected by connect4/6: accepted on the outbound listener (local port ==
 *     outbound_port), or on the inbound listener at a
 *     loopback address (the proxy's own connection to a local address); its peer is
 *     the connecting socket's end, which sockops recorded in tp_flow_v1;
 *   - inbound: steered by the tc or sk_lookup program with bpf_sk_assign, so no
 *     address was ever rewritten: its local address (an instance IP, or any other
 *     local non-loopback address) is the original destination.
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
	    (sk->src_port == cfg->outbound_port ||
	     /* the proxy's own connection redirected by connect4/6 to a local address; a
	      * tc-steered inbound socket is never here (its local address is an instance IP) */
	     (sk->src_port == cfg->inbound_port && tp_is_local(&local)))) {
		tp_flow_key(&peer, &remote);
		answer = bpf_map_lookup_elem(&tp_flow_v1, &peer);
	}
	/* Ours was rewritten by connect4/6: conntrack, when something in this netns
	 * turned it on, answers with the rewritten address (the listener), so our
	 * record wins even over a successful kernel answer. Otherwise a kernel answer
	 * stands (a NAT somebody else made). */
	if (!answer && ctx->retval == 0)
		return TP_ALLOW;
	/* a connection handed to the listener by tc or sk_lookup (any local address:
	 * instance IP, link-local, a second address): nothing was rewritten */
	if (!answer && !tp_is_local(&local))
		answer = &local;
	if (!answer)
		return TP_ALLOW;

	if (level == TP_SOL_IP)
		return answer_ip(ctx, answer);
	return answer_ipv6(ctx, answer);
}

/*
 * cgroup/setsockopt: an ordinary application must not choose its own route. A
 * routing header (IPV6_RTHDR, or one inside RFC 2292's IPV6_2292PKTOPTIONS block) or
 * an IPv4 source route (LSRR/SSRR in IP_OPTIONS) makes the kernel send the packets to
 * the first hop of the route, not to the address the connect/sendmsg hooks rewrote,
 * so the redirect is bypassed. For every uid but the proxy's these options are
 * refused with EPERM (the return value 0); other IP options pass. What a setsockopt
 * cannot see (the same headers as sendmsg ancillary data) is dropped by
 * cgroup_skb/egress (egress.bpf.c).
 */
#define TP_IP_OPTIONS          4
#define TP_IPV6_2292PKTOPTIONS 6
#define TP_IPV6_RTHDR          57
#define TP_IPOPT_END           0
#define TP_IPOPT_NOOP          1
#define TP_IPOPT_LSRR          0x83
#define TP_IPOPT_SSRR          0x89
#define TP_IPOPT_MAX_LEN       40
/* As in egress.bpf.c: a block of more options than this is treated as source-routed. */
#define TP_IPOPT_WALK          8
/* Larger buffers reach the program truncated to a page; optlen 0 tells the kernel to
 * use the caller's own buffer (a program that leaves a larger optlen gets EFAULT on
 * 5.x kernels). */
#define TP_SOCKOPT_PAGE        4096

/* Does an IP_OPTIONS block hold a loose or strict source route? */
static __always_inline int has_source_route(struct bpf_sockopt *ctx)
{
	__u8 *opt = ctx->optval;
	__u8 *end = ctx->optval_end;
	__u32 off = 0;
	int i;

	for (i = 0; i < TP_IPOPT_WALK; i++) {
		__u8 *p = opt + off;
		__u8 type, len;

		if (off >= TP_IPOPT_MAX_LEN || (long)off >= ctx->optlen || p + 2 > end) {
			/* a lone last byte can only be END or NOP */
			return 0;
		}
		type = p[0];
		if (type == TP_IPOPT_END)
			return 0;
		if (type == TP_IPOPT_NOOP) {
			off++;
			continue;
		}
		if (type == TP_IPOPT_LSRR || type == TP_IPOPT_SSRR)
			return 1;
		len = p[1];
		if (len < 2)
			return 0; /* malformed: the kernel refuses it itself */
		off += len;
	}
	return 1;
}

static __always_inline int route_option(struct bpf_sockopt *ctx)
{
	if (ctx->level == TP_SOL_IPV6)
		return ctx->optname == TP_IPV6_RTHDR || ctx->optname == TP_IPV6_2292PKTOPTIONS;
	if (ctx->level == TP_SOL_IP && ctx->optname == TP_IP_OPTIONS)
		return has_source_route(ctx);
	return 0;
}

SEC("cgroup/setsockopt")
int tp_setsockopt(struct bpf_sockopt *ctx)
{
	struct tp_config *cfg = tp_config();

	if (cfg && cfg->flags != 0 && route_option(ctx) &&
	    (__u32)bpf_get_current_uid_gid() != cfg->proxy_uid)
		return TP_COUNTED(TP_STAT_REFUSED_SOCKOPT, TP_REFUSE);
	if (ctx->optlen > TP_SOCKOPT_PAGE)
		ctx->optlen = 0;
	return TP_ALLOW;
}
