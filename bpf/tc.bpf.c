// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * tc.bpf.c — tc ingress: steers new inbound TCP connections to the proxy's inbound
 * listener without NAT.
 *
 * For a SYN to an instance IP on a captured port, bpf_skc_lookup_tcp finds the
 * proxy's listener at (instance IP, inbound_port) in this netns and bpf_sk_assign
 * hands the packet to it. The TCP stack then creates the connection with the packet's
 * own addresses, so the accepted socket's local address *is* the original destination
 * and the client's source address is preserved — no rewriting, no checksum fixes, no
 * flow table. Later packets of that connection find the accepted socket by the normal
 * lookup, so only SYNs need steering.
 *
 * Headers are read with bpf_skb_load_bytes_relative(BPF_HDR_START_NET): offsets count
 * from the network header, so the program works whatever the link layer (Ethernet,
 * VLAN-stripped, or none at all on tun/wireguard devices). IPv6 extension headers,
 * fragments and other local addresses are left alone here: the sk_lookup program
 * (sk_lookup.bpf.c) sees them after reassembly and steers them, or refuses them when no
 * listener exists. This program is the fast path for the plain case.
 *
 * Counters: none here. Every new SYN meets the sk_lookup program exactly once (in this
 * program's own-tuple lookup, or in the stack's lookup when this program passes it),
 * and sk_lookup counts the decision: steered, excluded port or source, refused.
 *
 * The program never drops. A steered SYN ends classification with TC_ACT_OK (the
 * socket assignment is final); every other packet returns TC_ACT_UNSPEC so filters
 * behind ours on the same clsact hook (other tools' programs) still see it.
 */
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/pkt_cls.h>
#include "helpers.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* IP_MF | IP_OFFSET: the kernel's names are not UAPI. */
#define TP_IP_FRAGMENT 0x3fff

/* Settings-based filter on a SYN's destination port (network order). */
static __always_inline int port_captured(const struct tp_config *cfg, __be16 dport)
{
	__u16 port = bpf_ntohs(dport);

	if (port == cfg->inbound_port)
		return 0; /* addressed to the proxy itself */
	if (bpf_map_lookup_elem(&tp_in_port_v1, &port))
		return 0;
	return 1;
}

/* A SYN that should go to the proxy: SYN without ACK (not a SYN-ACK). */
static __always_inline int is_new_connection(const struct tcphdr *th)
{
	return th->syn && !th->ack;
}

/*
 * First the proxy's listener at (dst, inbound_port): no listener, nothing to do (and
 * the SYN goes on to the normal lookup, where sk_lookup refuses it). Then the packet's
 * own tuple: if a socket other than a listener already owns it (established, a pending
 * request socket from an earlier SYN, TIME_WAIT) the normal path must handle it —
 * re-steering a retransmitted SYN would create a second request socket for the same
 * tuple. Only a LISTEN socket is a valid target for bpf_sk_assign here. Every
 * reference taken is released.
 *
 * The helpers' lookups run the sk_lookup program like the stack's own lookup does: the
 * own-tuple lookup of a new SYN is where sk_lookup counts it (as steered). This order
 * keeps that to one count per SYN: with no listener only the stack's lookup reaches
 * sk_lookup, and a lookup for the inbound port itself is never counted there.
 */
static __always_inline int steer(struct __sk_buff *skb, struct bpf_sock_tuple *t,
				  __u32 tuple_len, __be16 *dport, __u16 inbound_port)
{
	struct bpf_sock *listener, *sk;
	__be16 orig = *dport;
	int owned, assigned;

	*dport = bpf_htons(inbound_port);
	listener = bpf_skc_lookup_tcp(skb, t, tuple_len, BPF_F_CURRENT_NETNS, 0);
	if (!listener)
		return 0;
	*dport = orig;
	sk = bpf_skc_lookup_tcp(skb, t, tuple_len, BPF_F_CURRENT_NETNS, 0);
	if (sk) {
		owned = sk->state != BPF_TCP_LISTEN;
		bpf_sk_release(sk);
		if (owned) {
			bpf_sk_release(listener);
			return 0;
		}
	}
	assigned = listener->state == BPF_TCP_LISTEN && bpf_sk_assign(skb, listener, 0) == 0;
	bpf_sk_release(listener);
	return assigned;
}

static __always_inline int steer4(struct __sk_buff *skb, const struct tp_config *cfg)
{
	struct bpf_sock_tuple t = {};
	struct tp_lpm4_key src;
	struct tcphdr th;
	struct iphdr ip;

	if (!(cfg->flags & TP_F_IPV4) || cfg->instance_ip4 == 0)
		return 0;
	if (bpf_skb_load_bytes_relative(skb, 0, &ip, sizeof(ip), BPF_HDR_START_NET))
		return 0;
	if (ip.version != 4 || ip.ihl < 5 || ip.protocol != IPPROTO_TCP)
		return 0;
	if (ip.frag_off & bpf_htons(TP_IP_FRAGMENT))
		return 0;
	if (ip.daddr != cfg->instance_ip4)
		return 0;
	if (bpf_skb_load_bytes_relative(skb, ip.ihl * 4, &th, sizeof(th), BPF_HDR_START_NET))
		return 0;
	if (!is_new_connection(&th) || !port_captured(cfg, th.dest))
		return 0;
	src.prefixlen = 32;
	src.addr = ip.saddr;
	if (bpf_map_lookup_elem(&tp_in_cidr4_v1, &src))
		return 0;

	t.ipv4.saddr = ip.saddr;
	t.ipv4.daddr = ip.daddr;
	t.ipv4.sport = th.source;
	t.ipv4.dport = th.dest;
	return steer(skb, &t, sizeof(t.ipv4), &t.ipv4.dport, cfg->inbound_port);
}

static __always_inline int steer6(struct __sk_buff *skb, const struct tp_config *cfg)
{
	struct bpf_sock_tuple t = {};
	struct tp_lpm6_key src;
	struct ipv6hdr ip6;
	struct tcphdr th;
	const __u32 *saddr = ip6.saddr.in6_u.u6_addr32;
	const __u32 *daddr = ip6.daddr.in6_u.u6_addr32;

	if (!(cfg->flags & TP_F_IPV6) || !tp_has_ip6(cfg->instance_ip6))
		return 0;
	if (bpf_skb_load_bytes_relative(skb, 0, &ip6, sizeof(ip6), BPF_HDR_START_NET))
		return 0;
	if (ip6.version != 6 || ip6.nexthdr != IPPROTO_TCP)
		return 0;
	if (!tp_ip6_eq(daddr, cfg->instance_ip6))
		return 0;
	if (bpf_skb_load_bytes_relative(skb, sizeof(ip6), &th, sizeof(th), BPF_HDR_START_NET))
		return 0;
	if (!is_new_connection(&th) || !port_captured(cfg, th.dest))
		return 0;
	src.prefixlen = 128;
	tp_ip6_copy(src.addr, saddr);
	if (bpf_map_lookup_elem(&tp_in_cidr6_v1, &src))
		return 0;

	tp_ip6_copy(t.ipv6.saddr, saddr);
	tp_ip6_copy(t.ipv6.daddr, daddr);
	t.ipv6.sport = th.source;
	t.ipv6.dport = th.dest;
	return steer(skb, &t, sizeof(t.ipv6), &t.ipv6.dport, cfg->inbound_port);
}

SEC("tc")
int tp_tc_ingress(struct __sk_buff *skb)
{
	struct tp_config *cfg = tp_config();

	if (!cfg || !(cfg->flags & TP_F_INBOUND) || cfg->inbound_port == 0)
		return TC_ACT_UNSPEC;
	if (skb->protocol == bpf_htons(ETH_P_IP) && steer4(skb, cfg))
		return TC_ACT_OK;
	if (skb->protocol == bpf_htons(ETH_P_IPV6) && steer6(skb, cfg))
		return TC_ACT_OK;
	return TC_ACT_UNSPEC;
}
