/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * maps.h — every map of tpctl, defined once and included by every program object.
 *
 * Each object carries every definition (the unused ones cost nothing) and every
 * map is pinned by name, so libbpf creates a map on the first load and every later
 * object — and every later install — reuses the pinned one under the bpffs path.
 * That is what lets the controller update settings in place and lets the programs of
 * different objects (connect → sockops → getsockopt) hand state to each other.
 *
 * Key and value layouts come from abi.h; names carry the layout version (_v1).
 * libbpf refuses to reuse a pinned map whose type, key/value size, max_entries or
 * flags differ, so any change here must bump the version suffix too.
 */
#ifndef TP_MAPS_H
#define TP_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "abi.h"

/* Settings written by the controller; key 0 only. An ARRAY slot always exists, so a
 * program that runs before the controller filled it sees zeroes: flags == 0 disables
 * every redirection. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct tp_config);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tp_cfg_v1 SEC(".maps");

/* Socket cookie of a redirected socket → its original destination. Written by the
 * connect/sendmsg hooks, read by sockops, getpeername and recvmsg. LRU, because a
 * socket may vanish without any hook seeing it (UDP sockets have no close hook). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, __u64);
	__type(value, struct tp_addr);
	__uint(max_entries, 65536);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tp_orig_dst_v1 SEC(".maps");

/* Client end of a redirected TCP connection (instance IP + ephemeral port, i.e. the
 * peer the proxy's accepted socket reports) → original destination. Written by
 * sockops, read by getsockopt(SO_ORIGINAL_DST). LRU: the proxy may ask after the
 * client closed, so entries are never deleted, only aged out. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct tp_flow_key);
	__type(value, struct tp_addr);
	__uint(max_entries, 65536);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tp_flow_v1 SEC(".maps");

/* Excluded outbound TCP destination ports (host order) → 1. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u16);
	__type(value, __u8);
	__uint(max_entries, 65536);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tp_out_port_v1 SEC(".maps");

/* Excluded inbound TCP destination ports (host order) → 1. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u16);
	__type(value, __u8);
	__uint(max_entries, 65536);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tp_in_port_v1 SEC(".maps");

/* Excluded outbound IPv4 destinations (CIDRs). The kernel requires NO_PREALLOC for
 * every LPM trie. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct tp_lpm4_key);
	__type(value, __u8);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tp_out_cidr4_v1 SEC(".maps");

/* Excluded outbound IPv6 destinations (CIDRs). */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct tp_lpm6_key);
	__type(value, __u8);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tp_out_cidr6_v1 SEC(".maps");

/* Excluded inbound IPv4 sources (CIDRs). */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct tp_lpm4_key);
	__type(value, __u8);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tp_in_cidr4_v1 SEC(".maps");

/* Excluded inbound IPv6 sources (CIDRs). */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct tp_lpm6_key);
	__type(value, __u8);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tp_in_cidr6_v1 SEC(".maps");

/* (uid, protocol, port host order) never redirected; port 0 means every port. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct tp_uid_port_key);
	__type(value, __u8);
	__uint(max_entries, 65536);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tp_uid_excl_v1 SEC(".maps");

/* IPv4 DNS servers (network order) whose port-53 traffic is captured when dns_mode
 * is TP_DNS_LISTED. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, __u8);
	__uint(max_entries, 256);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tp_dns_srv4_v1 SEC(".maps");

/* IPv6 DNS servers, same role as tp_dns_srv4_v1. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct tp_ip6);
	__type(value, __u8);
	__uint(max_entries, 256);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tp_dns_srv6_v1 SEC(".maps");

/* The proxy's inbound listener, for the sk_lookup program: key 0 = the AF_INET
 * listener, key 1 = the AF_INET6 one (a dual-stack [::] listener takes IPv4 too).
 * Filled by sockops at TCP_LISTEN_CB for a socket listening on inbound_port in this
 * network namespace, and by the controller at install for a listener that already
 * exists. The kernel removes a socket from the map when it closes. */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 2);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tp_listener_v1 SEC(".maps");

/* Key 0: cookie of the network namespace tpctl was installed in (written by the
 * controller). cgroup hooks run for sockets of every namespace; sockops registers
 * only listeners of this one, so sk_lookup never hands a packet to a socket of
 * another namespace. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tp_netns_v1 SEC(".maps");

/* Decision counters (TP_STAT_* index → count), per CPU so the programs never contend;
 * `tpctl status` reads and sums them without stopping anything. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, TP_STAT_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tp_stats_v1 SEC(".maps");

#endif /* TP_MAPS_H */
