/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * helpers.h — constants the UAPI headers do not give BPF C, and small address
 * helpers shared by the programs.
 *
 * Address convention inside the programs: a destination is held as a struct tp_addr
 * (abi.h) and an IPv4-mapped IPv6 address (::ffff:a.b.c.d) is normalised to
 * TP_AF_INET with the IPv4 address in ip[0]. Such a connection is IPv4 on the wire,
 * so it obeys the IPv4 settings, and the proxy (listening on an IPv4 or dual-stack
 * socket) sees it as IPv4 — normalising at every boundary keeps map keys consistent.
 */
#ifndef TP_HELPERS_H
#define TP_HELPERS_H

#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "abi.h"
#include "maps.h"

/* <sys/socket.h> is libc; BPF C only has the UAPI headers. */
#define TP_SOCK_STREAM 1
#define TP_SOCK_DGRAM  2

/* Level 0 is SOL_IP and 41 SOL_IPV6; optname 80 is both SO_ORIGINAL_DST and
 * IP6T_SO_ORIGINAL_DST (netfilter headers, not UAPI-visible to BPF). */
#define TP_SOL_IP            0
#define TP_SOL_IPV6          41
#define TP_SO_ORIGINAL_DST   80

#define TP_DNS_PORT 53

/* cgroup sock_addr and sockopt programs: 1 lets the syscall proceed. */
#define TP_ALLOW 1
/* ... and 0 fails it with EPERM. */
#define TP_REFUSE 0

static __always_inline struct tp_config *tp_config(void)
{
	__u32 key = 0;

	return bpf_map_lookup_elem(&tp_cfg_v1, &key);
}

/* ::ffff:0:0/96 */
static __always_inline int tp_is_v4mapped(__u32 w0, __u32 w1, __u32 w2)
{
	return w0 == 0 && w1 == 0 && w2 == bpf_htonl(0x0000ffff);
}

/* Copies a 16-byte address, word by word (as four 4-byte stores, which is what
 * context fields such as bpf_sock_addr.user_ip6 accept). */
static __always_inline void tp_ip6_copy(__u32 *dst, const __u32 *src)
{
	dst[0] = src[0];
	dst[1] = src[1];
	dst[2] = src[2];
	dst[3] = src[3];
}

/* An IPv4 socket end: address and port in network order. */
static __always_inline void tp_addr4(struct tp_addr *a, __u32 ip, __u16 port_net)
{
	a->ip[0] = ip;
	a->ip[1] = 0;
	a->ip[2] = 0;
	a->ip[3] = 0;
	a->port = port_net;
	a->family = TP_AF_INET;
	a->pad = 0;
}

/* An IPv6 socket end from four network-order words; IPv4-mapped becomes IPv4. */
static __always_inline void tp_addr6(struct tp_addr *a, __u32 w0, __u32 w1, __u32 w2,
				     __u32 w3, __u16 port_net)
{
	if (tp_is_v4mapped(w0, w1, w2)) {
		tp_addr4(a, w3, port_net);
		return;
	}
	a->ip[0] = w0;
	a->ip[1] = w1;
	a->ip[2] = w2;
	a->ip[3] = w3;
	a->port = port_net;
	a->family = TP_AF_INET6;
	a->pad = 0;
}

/* The flow-table key of a socket end (same fields as tp_addr, its own type). */
static __always_inline void tp_flow_key(struct tp_flow_key *k, const struct tp_addr *a)
{
	tp_ip6_copy(k->ip, a->ip);
	k->port = a->port;
	k->family = a->family;
	k->pad = 0;
}

/* 127.0.0.0/8 */
static __always_inline int tp_is_loopback4(__u32 ip)
{
	return (bpf_ntohl(ip) >> 24) == 127;
}

/* 127.0.0.0/8 and 0.0.0.0 (connecting to 0.0.0.0 reaches the host itself). */
static __always_inline int tp_is_local4(__u32 ip)
{
	return tp_is_loopback4(ip) || ip == 0;
}

/* ::1 and :: (the IPv6 "this host" address). */
static __always_inline int tp_is_local6(const __u32 *ip)
{
	return ip[0] == 0 && ip[1] == 0 && ip[2] == 0 &&
	       (ip[3] == 0 || ip[3] == bpf_htonl(1));
}

/* A (normalised) address of this host: tp_is_local4 / tp_is_local6 by family. */
static __always_inline int tp_is_local(const struct tp_addr *a)
{
	return a->family == TP_AF_INET ? tp_is_local4(a->ip[0]) : tp_is_local6(a->ip);
}

static __always_inline int tp_has_ip6(const __u32 *ip)
{
	return (ip[0] | ip[1] | ip[2] | ip[3]) != 0;
}

static __always_inline int tp_ip6_eq(const __u32 *a, const __u32 *b)
{
	return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3];
}

/* Is the (normalised) address one of the instance IPs? */
static __always_inline int tp_is_instance(const struct tp_config *cfg,
					  const struct tp_addr *a)
{
	if (a->family == TP_AF_INET)
		return cfg->instance_ip4 != 0 && a->ip[0] == cfg->instance_ip4;
	return tp_has_ip6(cfg->instance_ip6) && tp_ip6_eq(a->ip, cfg->instance_ip6);
}

/* Is this family redirected at all (--ip-family-mode)? */
static __always_inline int tp_family_on(const struct tp_config *cfg, __u8 family)
{
	return cfg->flags & (family == TP_AF_INET ? TP_F_IPV4 : TP_F_IPV6);
}

/* Per-uid exclusion: (uid, proto, port) or (uid, proto, every port). */
static __always_inline int tp_uid_excluded(__u32 uid, __u8 proto, __u16 port_host)
{
	struct tp_uid_port_key k = { .uid = uid, .port = port_host, .proto = proto };

	if (bpf_map_lookup_elem(&tp_uid_excl_v1, &k))
		return 1;
	k.port = 0;
	return bpf_map_lookup_elem(&tp_uid_excl_v1, &k) != 0;
}

/* DNS redirection is on for the destination's family: every server, or at least one
 * of that family listed (with none, Kuma turns DNS capture off for the family). */
static __always_inline int dns_on_for(const struct tp_config *cfg, __u8 family)
{
	if (cfg->dns_mode == TP_DNS_OFF || cfg->dns_port == 0 || !tp_family_on(cfg, family))
		return 0;
	return cfg->flags & (family == TP_AF_INET ? TP_F_DNS4 : TP_F_DNS6);
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

	tp_ip6_copy(k.addr, dst->ip);
	return bpf_map_lookup_elem(&tp_dns_srv6_v1, &k) != 0;
}

/* Adds one to a decision counter (TP_STAT_*). Atomic: a tc program in softirq may
 * interrupt a cgroup program on the same CPU. Call sites stay one line:
 * TP_COUNT(TP_STAT_X); or return TP_COUNTED(TP_STAT_X, value); */
static __always_inline void tp_count(__u32 stat)
{
	__u64 *n = bpf_map_lookup_elem(&tp_stats_v1, &stat);

	if (n)
		__sync_fetch_and_add(n, 1);
}
#define TP_COUNT(stat) tp_count(stat)
#define TP_COUNTED(stat, ret) (tp_count(stat), (ret))

#endif /* TP_HELPERS_H */
