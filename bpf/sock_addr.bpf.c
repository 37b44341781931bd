// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * sock_addr.bpf.c — the cgroup socket-address hooks: outbound TCP capture and DNS
 * capture, plus the hooks that hide the rewrite from the application.
 *
 *   connect4/6      TCP: remember the original destination (by socket cookie), bind the
 *                   socket to the instance IP, send it to 127.0.0.1 / ::1 :outbound_port
 *                   (but DNS over TCP is left alone, see tcp_target). The proxy's own
 *                   connections to a local address go to :inbound_port the same way
 *                   (see proxy_target). UDP (connected DNS): rewrite to :dns_port, no
 *                   bind.
 *   sendmsg4/6      unconnected UDP DNS: same rewrite to :dns_port.
 *   recvmsg4/6      a reply from the DNS listener appears to come from the original server.
 *   getpeername4/6  a redirected socket reports its original peer.
 *
 * The programs rewrite; they refuse (EPERM) only a redirected socket bound to an
 * interface that cannot reach the listener (UDP DNS, or no instance IP of the family).
 *
 * IPv4-mapped destinations (::ffff:a.b.c.d on an AF_INET6 socket) reach only the *6
 * hooks — the kernel turns them into IPv4 connections after the hook — so they are
 * treated exactly like IPv4: IPv4 settings and exclusions apply, the redirect target
 * is ::ffff:127.0.0.1 and the bind address ::ffff:<instance IPv4>. Leaving them alone
 * would let any dual-stack application bypass the proxy.
 */
#include "helpers.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Envoy's inbound passthrough cluster binds its connections to the app to 127.0.0.6
 * (IPv6: ::6), which Kuma's rules never redirect. Host order. */
#define TP_PASSTHROUGH_IP4      0x7f000006
#define TP_PASSTHROUGH_IP6_LOW  6

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
 * IPv6 socket) or ::1. Written field by field, not through ctx_set_addr: building a
 * struct tp_addr on the stack first costs every redirected connect more instructions. */
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

/* Point the context at a listener on the instance IP of the destination's family (for
 * a socket bound to an interface); 0 when there is no instance IP of that family. */
static __always_inline int ctx_set_instance(struct bpf_sock_addr *ctx, int is6,
					    const struct tp_config *cfg, __u8 family,
					    __u16 port_host)
{
	/* checked on is6 first: connect4 must never touch user_ip6 */
	if (!is6) {
		if (family != TP_AF_INET || cfg->instance_ip4 == 0)
			return 0;
		ctx->user_ip4 = cfg->instance_ip4;
	} else if (family == TP_AF_INET) {
		if (cfg->instance_ip4 == 0)
			return 0;
		ctx->user_ip6[0] = 0;
		ctx->user_ip6[1] = 0;
		ctx->user_ip6[2] = bpf_htonl(0x0000ffff);
		ctx->user_ip6[3] = cfg->instance_ip4;
	} else {
		if (!tp_has_ip6(cfg->instance_ip6))
			return 0;
		tp_ip6_copy(ctx->user_ip6, cfg->instance_ip6);
	}
	ctx->user_port = bpf_htons(port_host);
	return 1;
}

/* Is the (normalised) address where ctx_set_loopback sends connections? */
static __always_inline int is_listener_ip(const struct tp_addr *a)
{
	if (a->family == TP_AF_INET)
		return a->ip[0] == bpf_htonl(INADDR_LOOPBACK);
	return a->ip[0] == 0 && a->ip[1] == 0 && a->ip[2] == 0 && a->ip[3] == bpf_htonl(1);
}

/* The port (host order) of the address in the context when that address is where the
 * listeners are, else 0. */
static __always_inline __u16 ctx_listener_port(struct bpf_sock_addr *ctx, int is6,
					       const struct tp_config *cfg)
{
	struct tp_addr a;

	ctx_addr(ctx, is6, &a);
	/* the instance IP: where a socket bound to an interface is sent (ctx_set_instance) */
	return is_listener_ip(&a) || tp_is_instance(cfg, &a) ? bpf_ntohs(a.port) : 0;
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
		tp_ip6_copy(ctx->user_ip6, orig->ip);
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

	tp_ip6_copy(k.addr, dst->ip);
	return bpf_map_lookup_elem(&tp_out_cidr6_v1, &k) != 0;
}

/* Is the socket bound to Envoy's inbound passthrough source, 127.0.0.6 / ::6 (or
 * ::ffff:127.0.0.6)? The bound address is the socket's rcv_saddr: src_ip4/src_ip6. */
static __always_inline int bound_to_passthrough(struct bpf_sock_addr *ctx)
{
	struct bpf_sock *sk = ctx->sk;
	struct tp_addr src;

	if (!sk)
		return 0;
	if (sk->family == TP_AF_INET)
		tp_addr4(&src, sk->src_ip4, 0);
	else if (sk->family == TP_AF_INET6)
		tp_addr6(&src, sk->src_ip6[0], sk->src_ip6[1], sk->src_ip6[2], sk->src_ip6[3], 0);
	else
		return 0;
	if (src.family == TP_AF_INET)
		return src.ip[0] == bpf_htonl(TP_PASSTHROUGH_IP4);
	return src.ip[0] == 0 && src.ip[1] == 0 && src.ip[2] == 0 &&
	       src.ip[3] == bpf_htonl(TP_PASSTHROUGH_IP6_LOW);
}

/*
 * A destination the proxy's connection would reach over `lo` without being
 * 127.0.0.1 / ::1, as far as BPF can tell: an instance IP, or an IPv4 loopback
 * address other than 127.0.0.1 (Kuma's rule says `! -d 127.0.0.1/32`, and all of
 * 127.0.0.0/8 is local). Other local addresses (of other interfaces, IPv6 addresses on
 * lo) are unknown here; see bpf/README.md.
 */
static __always_inline int proxy_local_dst(const struct tp_config *cfg,
					   const struct tp_addr *dst)
{
	if (tp_is_instance(cfg, dst))
		return 1;
	return dst->family == TP_AF_INET && tp_is_loopback4(dst->ip[0]) &&
	       dst->ip[0] != bpf_htonl(INADDR_LOOPBACK);
}

/*
 * The proxy's own TCP connects (Kuma's `-o lo ! -d 127.0.0.1 -m owner --uid-owner
 * <proxy> -j INBOUND_REDIRECT`): a connection to a local non-loopback address, e.g. an
 * outbound endpoint that is the local application, goes through the inbound listener
 * so inbound policies apply. Not when the socket is bound to the inbound passthrough
 * source (the rule before it RETURNs those: that is the proxy delivering inbound
 * traffic to the app). Port 53 is no exception (Kuma dropped its `! --dport 53` in
 * kumahq/kuma#16138). Like Kuma's INBOUND_REDIRECT chain (a plain REDIRECT),
 * excluded inbound ports and sources do not apply, and a connection to the inbound
 * port itself is redirected too (to 127.0.0.1 / ::1 :inbound_port, as REDIRECT does).
 */
static __always_inline __u16 proxy_target(struct bpf_sock_addr *ctx,
					  const struct tp_config *cfg,
					  const struct tp_addr *dst)
{
	if (!(cfg->flags & TP_F_INBOUND) || cfg->inbound_port == 0)
		return 0;
	if (!proxy_local_dst(cfg, dst))
		return 0;
	if (bound_to_passthrough(ctx))
		return 0;
	return cfg->inbound_port;
}

/* Counts the proxy's own TCP connect: sent to the inbound listener, or let through. */
static __always_inline __u16 proxy_counted(__u16 target)
{
	TP_COUNT(target ? TP_STAT_INBOUND : TP_STAT_PROXY);
	return target;
}

/*
 * The listener port (host order) a TCP connect is sent to, or 0 to leave it alone.
 * The order mirrors the iptables engine's chains: per-uid and per-port exclusions
 * first, then the proxy's own traffic, then DNS over TCP, then loopback / instance IPs /
 * excluded addresses. DNS over TCP from an application, while DNS redirection is on for
 * the family, goes to any server untouched: the DNS listener answers UDP only, and the
 * outbound listener resets what it has no route for (Kuma's OUTPUT rule
 * `-p tcp --dport 53 -m owner ! --uid-owner <proxy> -j RETURN`, kumahq/kuma#15401).
 */
static __always_inline __u16 tcp_target(struct bpf_sock_addr *ctx, const struct tp_config *cfg,
					__u32 uid, const struct tp_addr *dst)
{
	__u16 port = bpf_ntohs(dst->port);

	if (!tp_family_on(cfg, dst->family))
		return 0;
	if (tp_uid_excluded(uid, IPPROTO_TCP, port))
		return TP_COUNTED(TP_STAT_EXCL_UID, 0);
	if (bpf_map_lookup_elem(&tp_out_port_v1, &port))
		return TP_COUNTED(TP_STAT_EXCL_OUT_PORT, 0);
	if (uid == cfg->proxy_uid)
		return proxy_counted(proxy_target(ctx, cfg, dst));
	if (port == TP_DNS_PORT && dns_on_for(cfg, dst->family))
		return 0;
	if (tp_is_local(dst))
		return 0;
	if (tp_is_instance(cfg, dst))
		return 0;
	if (cidr_excluded(dst))
		return TP_COUNTED(TP_STAT_EXCL_OUT_ADDR, 0);
	return TP_COUNTED(TP_STAT_OUTBOUND, cfg->outbound_port);
}

/* The DNS listener port for a UDP datagram or connect, or 0 to leave it alone. */
static __always_inline __u16 udp_target(const struct tp_config *cfg, __u32 uid,
					const struct tp_addr *dst)
{
	if (!dns_captured(cfg, dst))
		return 0;
	if (uid == cfg->proxy_uid)
		return TP_COUNTED(TP_STAT_PROXY, 0);
	if (tp_uid_excluded(uid, IPPROTO_UDP, TP_DNS_PORT))
		return TP_COUNTED(TP_STAT_EXCL_UID, 0);
	return TP_COUNTED(TP_STAT_DNS, cfg->dns_port);
}

/* Source the proxy will see: the instance IP of the destination's family. A failed
 * bind (address not configured, socket already bound) is harmless: the connection
 * then comes from loopback or from the application's own bind. Not for an IPv4
 * loopback destination: under iptables (REDIRECT never changes the source) such a
 * connection comes from 127.0.0.1, and so it does here. */
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
		tp_ip6_copy(sa6.sin6_addr.in6_u.u6_addr32, cfg->instance_ip6);
	}
	bpf_bind(ctx, (struct sockaddr *)&sa6, sizeof(sa6));
}

/* TCP, and MPTCP (its subflows are TCP sockets; the hooks see the MPTCP socket for
 * getpeername). */
#define TP_IPPROTO_MPTCP 262

static __always_inline int is_tcp(struct bpf_sock_addr *ctx)
{
	return ctx->type == TP_SOCK_STREAM &&
	       (ctx->protocol == IPPROTO_TCP || ctx->protocol == TP_IPPROTO_MPTCP);
}

/* Bound to an interface (SO_BINDTODEVICE, or connect() to a link-local address with a
 * scope id before): such a socket cannot reach a listener on loopback, its route must
 * leave through that interface (and unbinding it needs CAP_NET_RAW, even from BPF). */
static __always_inline int bound_to_device(struct bpf_sock_addr *ctx)
{
	return ctx->sk && ctx->sk->bound_dev_if != 0;
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
	target = tcp ? tcp_target(ctx, cfg, uid, &dst) : udp_target(cfg, uid, &dst);
	if (target == 0)
		return TP_ALLOW;

	cookie = bpf_get_socket_cookie(ctx);
	bpf_map_update_elem(&tp_orig_dst_v1, &cookie, &dst, BPF_ANY);
	if (tcp && !(dst.family == TP_AF_INET && tp_is_loopback4(dst.ip[0])))
		bind_instance(ctx, is6, cfg, dst.family);
	if (bound_to_device(ctx)) {
		/* The listeners listen on every address: the instance IP is local and reachable
		 * through the bound interface. UDP listeners are on loopback only: refuse
		 * (EPERM) rather than lose the datagrams. */
		if (!tcp || !ctx_set_instance(ctx, is6, cfg, dst.family, target))
			return TP_REFUSE;
		return TP_ALLOW;
	}
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
	if (bound_to_device(ctx))
		return TP_REFUSE; /* see handle_connect */
	ctx_set_loopback(ctx, is6, dst.family, cfg->dns_port);
	return TP_ALLOW;
}

/* recvmsg (source of a datagram) and getpeername (peer of a socket) share one rule:
 * if the address is one of our listeners (the caller checked the port) and this
 * socket was redirected, show the original. */
static __always_inline int restore_original(struct bpf_sock_addr *ctx, int is6)
{
	struct tp_addr *orig;
	__u64 cookie;

	cookie = bpf_get_socket_cookie(ctx);
	orig = bpf_map_lookup_elem(&tp_orig_dst_v1, &cookie);
	if (orig)
		ctx_set_addr(ctx, is6, orig);
	return TP_ALLOW;
}

/*
 * An MPTCP socket was redirected through its first subflow, whose cookie is not the
 * one getpeername sees; but it took over the subflow's local address and port, which
 * sockops recorded in tp_flow_v1.
 */
static __always_inline int restore_by_local(struct bpf_sock_addr *ctx, int is6)
{
	struct bpf_sock *sk = ctx->sk;
	struct tp_flow_key key;
	struct tp_addr local;
	struct tp_addr *orig;
	__u64 cookie;

	cookie = bpf_get_socket_cookie(ctx);
	if (bpf_map_lookup_elem(&tp_orig_dst_v1, &cookie) || !sk)
		return restore_original(ctx, is6);
	if (sk->family == TP_AF_INET)
		tp_addr4(&local, sk->src_ip4, bpf_htons((__u16)sk->src_port));
	else if (sk->family == TP_AF_INET6)
		tp_addr6(&local, sk->src_ip6[0], sk->src_ip6[1], sk->src_ip6[2], sk->src_ip6[3],
			 bpf_htons((__u16)sk->src_port));
	else
		return TP_ALLOW;
	tp_flow_key(&key, &local);
	orig = bpf_map_lookup_elem(&tp_flow_v1, &key);
	if (orig)
		ctx_set_addr(ctx, is6, orig);
	return TP_ALLOW;
}

static __always_inline int handle_recvmsg(struct bpf_sock_addr *ctx, int is6)
{
	struct tp_config *cfg = tp_config();
	__u16 port;

	if (!cfg || !is_udp(ctx))
		return TP_ALLOW;
	port = ctx_listener_port(ctx, is6, cfg);
	if (port == 0 || port != cfg->dns_port)
		return TP_ALLOW;
	return restore_original(ctx, is6);
}

/* TCP peers can be any listener a connect4/6 sends to: outbound, or inbound (the
 * proxy's own connections to a local address). */
static __always_inline int handle_getpeername(struct bpf_sock_addr *ctx, int is6)
{
	struct tp_config *cfg = tp_config();
	__u16 port;

	if (!cfg)
		return TP_ALLOW;
	port = ctx_listener_port(ctx, is6, cfg);
	if (port == 0)
		return TP_ALLOW;
	if (is_tcp(ctx) && (port == cfg->outbound_port || port == cfg->inbound_port))
		return restore_by_local(ctx, is6);
	if (is_udp(ctx) && port == cfg->dns_port)
		return restore_original(ctx, is6);
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
