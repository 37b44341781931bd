// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * sock_addr.bpf.c — the cgroup socket-address hooks: outbound TCP capture and DNS
 * capture, plus the hooks that hide the rewrite from the application.
 *
 *   connect4/6      TCP: remember the original destination (by socket cookie), bind the
 *                   socket to the instance IP, send it to 127.0.0.1 / ::1 :outbound_port
 *                   (:dns_port for a captured DNS server's port 53, as the iptables
 *                   engine does). UDP (connected DNS): rewrite to :dns_port, no bind.
 *   sendmsg4/6      unconnected UDP DNS: same rewrite to :dns_port.
 *   recvmsg4/6      a reply from the DNS listener appears to come from the original server.
 *   getpeername4/6  a redirected socket reports its original peer.
 *
 * All programs return 1: they only ever rewrite, never refuse a syscall.
 *
 * IPv4-mapped destinations (::ffff:a.b.c.d on an AF_INET6 socket) reach only the *6
 * hooks — the kernel turns them into IPv4 connections after the hook — so they are
 * treated exactly like IPv4: IPv4 settings and exclusions apply, the redirect target
 * is ::ffff:127.0.0.1 and the bind address ::ffff:<instance IPv4>. Leaving them alone
 * would let any dual-stack application bypass the proxy.
 */
#include "helpers.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* The destination of a sock_addr context, normalised (see helpers.h). */
static __always_inline void ctx_addr(struct bpf_sock_addr *ctx, int is6, struct tp_addr *a)
{
	/* user_port holds the 16-bit network-order port in a 32-bit field */
	__u16 port = (__u16)ctx->user_port;

	if (is6)
		tp_addr6(a, ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2],
			 ctx->user_ip6[3], port);
	else
		tp_addr4(a, ctx->user_ip4, port);
}

/* Point the context at the local listener: 127.0.0.1, ::ffff:127.0.0.1 (IPv4 on an
 * IPv6 socket) or ::1. */
static __always_inline void ctx_set_loopback(struct bpf_sock_addr *ctx, int is6, __u8 family,
					     __u16 port_host)
{
	if (!is6) {
		ctx->user_ip4 = bpf_htonl(INADDR_LOOPBACK);
	} else if (family == TP_AF_INET) {
		ctx->user_ip6[0] = 0;
		ctx->user_ip6[1] = 0;
		ctx->user_ip6[2] = bpf_htonl(0x0000ffff);
		ctx->user_ip6[3] = bpf_htonl(INADDR_LOOPBACK);
	} else {
		ctx->user_ip6[0] = 0;
		ctx->user_ip6[1] = 0;
		ctx->user_ip6[2] = 0;
		ctx->user_ip6[3] = bpf_htonl(1);
	}
	ctx->user_port = bpf_htons(port_host);
}

/* Is the address in the context the local listener at one of two ports? */
static __always_inline int ctx_is_listener(struct bpf_sock_addr *ctx, int is6, __u16 port_a,
					   __u16 port_b)
{
	struct tp_addr a;

	ctx_addr(ctx, is6, &a);
	if (a.port == 0 || (a.port != bpf_htons(port_a) && a.port != bpf_htons(port_b)))
		return 0;
	if (a.family == TP_AF_INET)
		return a.ip[0] == bpf_htonl(INADDR_LOOPBACK);
	return a.ip[0] == 0 && a.ip[1] == 0 && a.ip[2] == 0 && a.ip[3] == bpf_htonl(1);
}

/* Replace the address in the context with a remembered original, in the context's
 * own format. An IPv6 original cannot be expressed on an IPv4 context (it never
 * happens: the original and the redirect share the socket's family). */
static __always_inline void ctx_set_addr(struct bpf_sock_addr *ctx, int is6,
					 const struct tp_addr *orig)
{
	if (!is6) {
		if (orig->family != TP_AF_INET)
			return;
		ctx->user_ip4 = orig->ip[0];
	} else if (orig->family == TP_AF_INET) {
		ctx->user_ip6[0] = 0;
		ctx->user_ip6[1] = 0;
		ctx->user_ip6[2] = bpf_htonl(0x0000ffff);
		ctx->user_ip6[3] = orig->ip[0];
	} else {
		ctx->user_ip6[0] = orig->ip[0];
		ctx->user_ip6[1] = orig->ip[1];
		ctx->user_ip6[2] = orig->ip[2];
		ctx->user_ip6[3] = orig->ip[3];
	}
	ctx->user_port = orig->port;
}

static __always_inline int cidr_excluded(const struct tp_addr *dst)
{
	if (dst->family == TP_AF_INET) {
		struct tp_lpm4_key k = { .prefixlen = 32, .addr = dst->ip[0] };

		return bpf_map_lookup_elem(&tp_out_cidr4_v1, &k) != 0;
	}
	struct tp_lpm6_key k = { .prefixlen = 128 };

	k.addr[0] = dst->ip[0];
	k.addr[1] = dst->ip[1];
	k.addr[2] = dst->ip[2];
	k.addr[3] = dst->ip[3];
	return bpf_map_lookup_elem(&tp_out_cidr6_v1, &k) != 0;
}

/* Port 53 of a DNS server that is captured (every server, or one listed). */
static __always_inline int dns_captured(const struct tp_config *cfg, const struct tp_addr *dst)
{
	if (cfg->dns_mode == TP_DNS_OFF || cfg->dns_port == 0)
		return 0;
	if (dst->port != bpf_htons(TP_DNS_PORT) || !tp_family_on(cfg, dst->family))
		return 0;
	if (cfg->dns_mode == TP_DNS_ALL)
		return 1;
	if (dst->family == TP_AF_INET)
		return bpf_map_lookup_elem(&tp_dns_srv4_v1, &dst->ip[0]) != 0;

	struct tp_ip6 k;

	k.addr[0] = dst->ip[0];
	k.addr[1] = dst->ip[1];
	k.addr[2] = dst->ip[2];
	k.addr[3] = dst->ip[3];
	return bpf_map_lookup_elem(&tp_dns_srv6_v1, &k) != 0;
}

/*
 * The listener port (host order) a TCP connect is sent to, or 0 to leave it alone.
 * The order mirrors the iptables engine's chains: per-uid and per-port exclusions
 * first, then the proxy's own traffic, then DNS over TCP (captured even to a loopback
 * resolver, like UDP), then loopback / instance IPs / excluded addresses.
 */
static __always_inline __u16 tcp_target(const struct tp_config *cfg, __u32 uid,
					const struct tp_addr *dst)
{
	__u16 port = bpf_ntohs(dst->port);

	if (uid == cfg->proxy_uid || !tp_family_on(cfg, dst->family))
		return 0;
	if (tp_uid_excluded(uid, IPPROTO_TCP, port))
		return 0;
	if (bpf_map_lookup_elem(&tp_out_port_v1, &port))
		return 0;
	if (dns_captured(cfg, dst))
		return cfg->dns_port;
	if (dst->family == TP_AF_INET ? tp_is_local4(dst->ip[0]) : tp_is_local6(dst->ip))
		return 0;
	if (tp_is_instance(cfg, dst) || cidr_excluded(dst))
		return 0;
	return cfg->outbound_port;
}

/* The DNS listener port for a UDP datagram or connect, or 0 to leave it alone. */
static __always_inline __u16 udp_target(const struct tp_config *cfg, __u32 uid,
					const struct tp_addr *dst)
{
	if (uid == cfg->proxy_uid || !dns_captured(cfg, dst))
		return 0;
	if (tp_uid_excluded(uid, IPPROTO_UDP, TP_DNS_PORT))
		return 0;
	return cfg->dns_port;
}

/* Source the proxy will see: the instance IP of the destination's family. A failed
 * bind (address not configured, socket already bound) is harmless: the connection
 * then comes from loopback or from the application's own bind. */
static __always_inline void bind_instance(struct bpf_sock_addr *ctx, int is6,
					  const struct tp_config *cfg, __u8 family)
{
	if (!is6) {
		struct sockaddr_in sa = {};

		if (cfg->instance_ip4 == 0)
			return;
		sa.sin_family = TP_AF_INET;
		sa.sin_addr.s_addr = cfg->instance_ip4;
		bpf_bind(ctx, (struct sockaddr *)&sa, sizeof(sa));
		return;
	}
	struct sockaddr_in6 sa6 = {};

	sa6.sin6_family = TP_AF_INET6;
	if (family == TP_AF_INET) {
		if (cfg->instance_ip4 == 0)
			return;
		sa6.sin6_addr.in6_u.u6_addr32[2] = bpf_htonl(0x0000ffff);
		sa6.sin6_addr.in6_u.u6_addr32[3] = cfg->instance_ip4;
	} else {
		if (!tp_has_ip6(cfg->instance_ip6))
			return;
		sa6.sin6_addr.in6_u.u6_addr32[0] = cfg->instance_ip6[0];
		sa6.sin6_addr.in6_u.u6_addr32[1] = cfg->instance_ip6[1];
		sa6.sin6_addr.in6_u.u6_addr32[2] = cfg->instance_ip6[2];
		sa6.sin6_addr.in6_u.u6_addr32[3] = cfg->instance_ip6[3];
	}
	bpf_bind(ctx, (struct sockaddr *)&sa6, sizeof(sa6));
}

static __always_inline int is_tcp(struct bpf_sock_addr *ctx)
{
	return ctx->type == TP_SOCK_STREAM && ctx->protocol == IPPROTO_TCP;
}

static __always_inline int is_udp(struct bpf_sock_addr *ctx)
{
	return ctx->type == TP_SOCK_DGRAM && ctx->protocol == IPPROTO_UDP;
}

static __always_inline __u32 current_uid(void)
{
	return (__u32)bpf_get_current_uid_gid();
}

static __always_inline int handle_connect(struct bpf_sock_addr *ctx, int is6)
{
	struct tp_config *cfg = tp_config();
	struct tp_addr dst;
	__u16 target;
	__u64 cookie;
	__u32 uid;
	int tcp;

	if (!cfg)
		return TP_ALLOW;
	tcp = is_tcp(ctx);
	if (!tcp && !is_udp(ctx))
		return TP_ALLOW;
	uid = current_uid();
	ctx_addr(ctx, is6, &dst);
	target = tcp ? tcp_target(cfg, uid, &dst) : udp_target(cfg, uid, &dst);
	if (target == 0)
		return TP_ALLOW;

	cookie = bpf_get_socket_cookie(ctx);
	bpf_map_update_elem(&tp_orig_dst_v1, &cookie, &dst, BPF_ANY);
	if (tcp)
		bind_instance(ctx, is6, cfg, dst.family);
	ctx_set_loopback(ctx, is6, dst.family, target);
	return TP_ALLOW;
}

/* Unconnected UDP: each datagram names its destination. The original is kept per
 * socket (the cookie), which is what a resolver needs: one socket, one server at a
 * time. */
static __always_inline int handle_sendmsg(struct bpf_sock_addr *ctx, int is6)
{
	struct tp_config *cfg = tp_config();
	struct tp_addr dst;
	__u64 cookie;

	if (!cfg || !is_udp(ctx))
		return TP_ALLOW;
	ctx_addr(ctx, is6, &dst);
	if (udp_target(cfg, current_uid(), &dst) == 0)
		return TP_ALLOW;
	cookie = bpf_get_socket_cookie(ctx);
	bpf_map_update_elem(&tp_orig_dst_v1, &cookie, &dst, BPF_ANY);
	ctx_set_loopback(ctx, is6, dst.family, cfg->dns_port);
	return TP_ALLOW;
}

/* recvmsg (source of a datagram) and getpeername (peer of a socket) share one rule:
 * if the address is our listener and this socket was redirected, show the original. */
static __always_inline int restore_original(struct bpf_sock_addr *ctx, int is6, __u16 port_a,
					    __u16 port_b)
{
	struct tp_addr *orig;
	__u64 cookie;

	if (!ctx_is_listener(ctx, is6, port_a, port_b))
		return TP_ALLOW;
	cookie = bpf_get_socket_cookie(ctx);
	orig = bpf_map_lookup_elem(&tp_orig_dst_v1, &cookie);
	if (orig)
		ctx_set_addr(ctx, is6, orig);
	return TP_ALLOW;
}

static __always_inline int handle_recvmsg(struct bpf_sock_addr *ctx, int is6)
{
	struct tp_config *cfg = tp_config();

	if (!cfg || !is_udp(ctx))
		return TP_ALLOW;
	return restore_original(ctx, is6, cfg->dns_port, cfg->dns_port);
}

static __always_inline int handle_getpeername(struct bpf_sock_addr *ctx, int is6)
{
	struct tp_config *cfg = tp_config();

	if (!cfg)
		return TP_ALLOW;
	if (is_tcp(ctx))
		return restore_original(ctx, is6, cfg->outbound_port, cfg->dns_port);
	if (is_udp(ctx))
		return restore_original(ctx, is6, cfg->dns_port, cfg->dns_port);
	return TP_ALLOW;
}

SEC("cgroup/connect4")
int tp_connect4(struct bpf_sock_addr *ctx)
{
	return handle_connect(ctx, 0);
}

SEC("cgroup/connect6")
int tp_connect6(struct bpf_sock_addr *ctx)
{
	return handle_connect(ctx, 1);
}

SEC("cgroup/sendmsg4")
int tp_sendmsg4(struct bpf_sock_addr *ctx)
{
	return handle_sendmsg(ctx, 0);
}

SEC("cgroup/sendmsg6")
int tp_sendmsg6(struct bpf_sock_addr *ctx)
{
	return handle_sendmsg(ctx, 1);
}

SEC("cgroup/recvmsg4")
int tp_recvmsg4(struct bpf_sock_addr *ctx)
{
	return handle_recvmsg(ctx, 0);
}

SEC("cgroup/recvmsg6")
int tp_recvmsg6(struct bpf_sock_addr *ctx)
{
	return handle_recvmsg(ctx, 1);
}

SEC("cgroup/getpeername4")
int tp_getpeername4(struct bpf_sock_addr *ctx)
{
	return handle_getpeername(ctx, 0);
}

SEC("cgroup/getpeername6")
int tp_getpeername6(struct bpf_sock_addr *ctx)
{
	return handle_getpeername(ctx, 1);
}
