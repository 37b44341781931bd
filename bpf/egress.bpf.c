// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * egress.bpf.c — cgroup_skb/egress: no packet of an ordinary application leaves with
 * a route of its own choosing.
 *
 * cgroup/setsockopt refuses the socket options that set a routing header or an IPv4
 * source route, but the same headers can ride on a single sendmsg as ancillary data
 * (IPV6_RTHDR / IPV6_2292RTHDR cmsg, IP_RETOPTS), which no setsockopt hook sees.
 * Every packet a socket of the cgroup sends passes here, after the IP header (and its
 * extension headers) were built: an IPv6 packet with a routing header, or an IPv4
 * packet with an LSRR/SSRR option, from any uid but the proxy's is dropped. The
 * sender gets EPERM (UDP) or a connection that never leaves (TCP, which cannot set
 * them per packet anyway).
 *
 * Also refused: stale DNS (stale_dns) and loopback-bound packets leaving through
 * another interface (loopback_elsewhere). The common packet costs one settings lookup
 * and a few header loads.
 */
#include <stddef.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include "helpers.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define TP_PASS 1
#define TP_DROP 0

#define TP_NEXTHDR_HOP      0
#define TP_NEXTHDR_ROUTING  43
#define TP_NEXTHDR_FRAGMENT 44
#define TP_NEXTHDR_DEST     60
/* Extension headers before the routing header in a sane packet: hop-by-hop,
 * destination options; a few more are walked for odd orders. */
#define TP_MAX_EXT_HDRS     6

#define TP_IPOPT_END   0
#define TP_IPOPT_NOOP  1
#define TP_IPOPT_LSRR  0x83
#define TP_IPOPT_SSRR  0x89
#define TP_IPOPT_SPACE 40
/* Options looked at before giving up; a block with more (NOP padding included) is
 * treated as source-routed: no real option set needs that many, and a bound this
 * small keeps the verifier's work small. */
#define TP_IPOPT_WALK  8

/* Direct packet reads: at cgroup egress skb->data is the IP header, built in the
 * linear part (a helper call per option made the verifier give up on the loop). */
static __always_inline int ipv4_source_routed(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct iphdr *ip = data;
	__u8 *opt = (__u8 *)(ip + 1);
	__u32 off = 0, len;
	int i;

	if ((void *)(ip + 1) > data_end || ip->ihl <= 5)
		return 0;
	len = ip->ihl * 4 - sizeof(*ip);
	for (i = 0; i < TP_IPOPT_WALK; i++) {
		__u8 *p = opt + off;

		if (off >= len || off >= TP_IPOPT_SPACE || (void *)(p + 2) > data_end)
			return 0;
		if (p[0] == TP_IPOPT_END)
			return 0;
		if (p[0] == TP_IPOPT_NOOP) {
			off++;
			continue;
		}
		if (p[0] == TP_IPOPT_LSRR || p[0] == TP_IPOPT_SSRR)
			return 1;
		if (p[1] < 2)
			return 0;
		off += p[1];
	}
	return 1;
}

static __always_inline int ipv6_routing_header(struct __sk_buff *skb)
{
	struct ipv6hdr ip6;
	__u8 next, hdr[2];
	__u32 off;
	int i;

	if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)))
		return 0;
	next = ip6.nexthdr;
	off = sizeof(ip6);
	for (i = 0; i < TP_MAX_EXT_HDRS; i++) {
		if (next == TP_NEXTHDR_ROUTING)
			return 1;
		if (next != TP_NEXTHDR_HOP && next != TP_NEXTHDR_DEST && next != TP_NEXTHDR_FRAGMENT)
			return 0;
		if (bpf_skb_load_bytes(skb, off, hdr, sizeof(hdr)))
			return 0;
		/* a fragment header is 8 bytes; hop-by-hop and destination options say (len+1)*8 */
		off += next == TP_NEXTHDR_FRAGMENT ? 8 : ((__u32)hdr[1] + 1) * 8;
		next = hdr[0];
	}
	/* more extension headers than any real packet: refuse rather than guess */
	return 1;
}

/*
 * A UDP datagram to port 53 of a captured DNS server that was not redirected: its
 * socket was connected before tpctl was installed (connect4/6 never saw it, and
 * sendmsg hooks run only for datagrams that name their destination). The iptables
 * engine redirects such a socket's next datagram; BPF cannot rewrite it here, so it
 * refuses it (the sender gets EPERM; resolvers then open a new socket, which is
 * redirected) instead of letting DNS go around the proxy.
 */
static __always_inline int stale_dns(struct __sk_buff *skb, const struct tp_config *cfg,
				     __u32 uid)
{
	struct tp_addr dst;
	__be16 dport;

	if (cfg->dns_mode == TP_DNS_OFF)
		return 0;
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr ip;

		if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)) || ip.protocol != IPPROTO_UDP)
			return 0;
		if (bpf_skb_load_bytes(skb, ip.ihl * 4 + 2, &dport, sizeof(dport)))
			return 0;
		tp_addr4(&dst, ip.daddr, dport);
	} else {
		struct ipv6hdr ip6;

		if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)) || ip6.nexthdr != IPPROTO_UDP)
			return 0;
		if (bpf_skb_load_bytes(skb, sizeof(ip6) + 2, &dport, sizeof(dport)))
			return 0;
		tp_addr6(&dst, ip6.daddr.in6_u.u6_addr32[0], ip6.daddr.in6_u.u6_addr32[1],
			 ip6.daddr.in6_u.u6_addr32[2], ip6.daddr.in6_u.u6_addr32[3], dport);
	}
	if (dport != bpf_htons(TP_DNS_PORT) || !dns_captured(cfg, &dst))
		return 0;
	return !tp_uid_excluded(uid, IPPROTO_UDP, TP_DNS_PORT);
}

/* Every network namespace numbers its loopback device 1 (LOOPBACK_IFINDEX). */
#define TP_LOOPBACK_IFINDEX 1

/*
 * A datagram redirected to a loopback listener but sent with an interface index of its
 * own (IP_PKTINFO ifindex, IP_UNICAST_IF) leaves through that interface, where nobody
 * will ever take it: refuse it (EPERM) rather than lose it in silence. (IPv6 already
 * fails such a send with ENETUNREACH.)
 */
static __always_inline int loopback_elsewhere(struct __sk_buff *skb)
{
	__u32 daddr;

	if (skb->ifindex == TP_LOOPBACK_IFINDEX)
		return 0;
	if (bpf_skb_load_bytes(skb, offsetof(struct iphdr, daddr), &daddr, sizeof(daddr)))
		return 0;
	return tp_is_loopback4(daddr);
}

SEC("cgroup_skb/egress")
int tp_egress(struct __sk_buff *skb)
{
	struct tp_config *cfg = tp_config();
	__u32 uid;

	if (!cfg || cfg->flags == 0)
		return TP_PASS;
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		if (ipv4_source_routed(skb) || loopback_elsewhere(skb))
			goto owner;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		if (ipv6_routing_header(skb))
			goto owner;
	} else {
		return TP_PASS;
	}
	uid = bpf_get_socket_uid(skb);
	if (uid == cfg->proxy_uid || !stale_dns(skb, cfg, uid))
		return TP_PASS;
	return TP_COUNTED(TP_STAT_DROPPED_EGRESS, TP_DROP);
owner:
	if (bpf_get_socket_uid(skb) == cfg->proxy_uid)
		return TP_PASS;
	return TP_COUNTED(TP_STAT_DROPPED_EGRESS, TP_DROP);
}
