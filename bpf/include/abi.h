/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * abi.h — the layout of every map key and value shared by the BPF programs and the
 * TypeScript controller (src/ebpf/codecs.ts mirrors each struct; test/ebpf/abi.test.ts
 * compares every field offset and size, every enum and every map definition recorded
 * in the objects' BTF with the TypeScript side).
 *
 * Rules that keep the two sides in step:
 *   - fixed-width types only, explicit padding, no bitfields;
 *   - addresses in network byte order, always in a 16-byte __u32[4] slot (IPv4 uses
 *     word 0, the rest zero) so one struct serves both families;
 *   - a port is network order when it is part of a socket address (tp_addr),
 *     host order when it is a setting or a map key (config, exclusions);
 *   - bump TP_ABI_VERSION and the _vN suffix of every map name on any change, so an
 *     old pinned map is never reused with a new layout.
 */
#ifndef TP_ABI_H
#define TP_ABI_H

#include <linux/types.h>

/*
 * Every constant the controller shares with the programs is an enumerator, not a
 * #define: tp_abi_anchor below puts each enum into the object's BTF, where
 * test/ebpf/abi.test.ts compares it with src/ebpf/abi.ts.
 */
enum tp_abi {
	TP_ABI_VERSION = 1,
};

enum tp_af {
	TP_AF_INET  = 2,
	TP_AF_INET6 = 10,
};

/* tp_config.dns_mode */
enum tp_dns_mode {
	TP_DNS_OFF    = 0, /* never touch DNS */
	TP_DNS_LISTED = 1, /* only servers present in tp_dns_srv4/6 */
	TP_DNS_ALL    = 2, /* every UDP datagram to port 53 */
};

/* tp_config.flags */
enum tp_cfg_flag {
	TP_F_INBOUND = 1u << 0, /* capture inbound TCP (tc program) */
	TP_F_IPV4    = 1u << 1, /* redirect IPv4 */
	TP_F_IPV6    = 1u << 2, /* redirect IPv6 (dualstack mode) */
	TP_F_DNS4    = 1u << 3, /* DNS redirection on for IPv4 (all, or an IPv4 server listed) */
	TP_F_DNS6    = 1u << 4, /* DNS redirection on for IPv6 (all, or an IPv6 server listed) */
};

/* Keys of tp_listener_v1 (SOCKMAP: value = socket). */
enum tp_listener_key {
	TP_LISTENER_INET  = 0,
	TP_LISTENER_INET6 = 1,
};

/* Index into tp_stats_v1 (per-CPU __u64 counters, one per decision; `tpctl status`
 * sums them). New decisions take the next free index below TP_STAT_MAX. */
enum tp_stat {
	TP_STAT_OUTBOUND        = 0,  /* TCP connect sent to the outbound listener */
	TP_STAT_INBOUND         = 1,  /* inbound SYN steered (tc or sk_lookup), or the proxy's local connect sent to the inbound listener */
	TP_STAT_DNS             = 2,  /* DNS (UDP datagram / connect) sent to the DNS listener */
	TP_STAT_EXCL_OUT_PORT   = 3,  /* outbound TCP left alone: excluded port */
	TP_STAT_EXCL_IN_PORT    = 4,  /* inbound SYN left alone: excluded port */
	TP_STAT_EXCL_OUT_ADDR   = 5,  /* outbound TCP left alone: excluded destination */
	TP_STAT_EXCL_IN_ADDR    = 6,  /* inbound SYN left alone: excluded source */
	TP_STAT_EXCL_UID        = 7,  /* left alone: per-uid exclusion */
	TP_STAT_PROXY           = 8,  /* the proxy's own traffic let through */
	TP_STAT_NO_LISTENER     = 9,  /* inbound SYN to steer, but no proxy listener: refused by sk_lookup */
	TP_STAT_REFUSED_SOCKOPT = 10, /* setsockopt of a routing header / source route refused (EPERM) */
	TP_STAT_DROPPED_EGRESS  = 11, /* packet dropped at cgroup egress: source-routed, routed around, stale DNS */
	TP_STAT_MAX             = 16,
};

/* Value of the single-entry array map tp_cfg_v1 (key 0). */
struct tp_config {
	__u32 proxy_uid;        /* connections of this uid are never touched */
	__u16 outbound_port;    /* host order: 15001 */
	__u16 inbound_port;     /* host order: 15006 */
	__u16 dns_port;         /* host order: 15053 */
	__u8  dns_mode;         /* TP_DNS_* */
	__u8  flags;            /* TP_F_* */
	__u32 instance_ip4;     /* network order; 0 = none */
	__u32 instance_ip6[4];  /* network order; all zero = none */
};                          /* 32 bytes */

/* A socket address: the original destination of a redirected connection. */
struct tp_addr {
	__u32 ip[4];            /* network order; IPv4 in ip[0] */
	__u16 port;             /* network order */
	__u8  family;           /* TP_AF_INET / TP_AF_INET6 */
	__u8  pad;
};                          /* 20 bytes */

/*
 * Key of tp_flow_v1: the client end of a redirected TCP connection, i.e. what the
 * proxy's accepted socket reports as its peer (instance IP + ephemeral port).
 */
struct tp_flow_key {
	__u32 ip[4];            /* network order */
	__u16 port;             /* network order */
	__u8  family;
	__u8  pad;
};                          /* 20 bytes */

/* Keys of the LPM tries holding excluded CIDRs. */
struct tp_lpm4_key {
	__u32 prefixlen;
	__u32 addr;             /* network order */
};                          /* 8 bytes */

struct tp_lpm6_key {
	__u32 prefixlen;
	__u32 addr[4];          /* network order */
};                          /* 20 bytes */

/* Key of tp_uid_excl_v1: one (uid, protocol, port) that is never redirected. */
struct tp_uid_port_key {
	__u32 uid;
	__u16 port;             /* host order; 0 = every port */
	__u8  proto;            /* IPPROTO_TCP (6) or IPPROTO_UDP (17) */
	__u8  pad;
};                          /* 8 bytes */

/* Key of tp_dns_srv6_v1 (tp_dns_srv4_v1 uses a plain __u32, network order). */
struct tp_ip6 {
	__u32 addr[4];          /* network order */
};                          /* 16 bytes */

/*
 * Not used by any program: one variable of every enum above, so clang records each
 * enum (names and values) in the object's BTF for the layout test. It lives in a
 * section of its own, which libbpf skips (no map, nothing loaded into the kernel).
 */
struct tp_abi_consts {
	enum tp_abi abi;
	enum tp_af af;
	enum tp_dns_mode dns_mode;
	enum tp_cfg_flag cfg_flag;
	enum tp_listener_key listener_key;
	enum tp_stat stat;
};

__attribute__((section(".tp_abi"), used)) const struct tp_abi_consts tp_abi_anchor = {};

#endif /* TP_ABI_H */
