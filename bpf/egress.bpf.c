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
 * The common packet costs one settings lookup and one header load: IPv4 without
 * options (ihl == 5) and IPv6 whose next header is not an extension header pass at
 * once.
 */
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

SEC("cgroup_skb/egress")
int tp_egress(struct __sk_buff *skb)
{
	struct tp_config *cfg = tp_config();

	if (!cfg || cfg->flags == 0)
		return TP_PASS;
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		if (!ipv4_source_routed(skb))
			return TP_PASS;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		if (!ipv6_routing_header(skb))
			return TP_PASS;
	} else {
		return TP_PASS;
	}
	return bpf_get_socket_uid(skb) == cfg->proxy_uid ? TP_PASS : TP_DROP;
}
