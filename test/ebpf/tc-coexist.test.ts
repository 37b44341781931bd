/**
 * Our tc ingress filter next to someone else's on the same clsact hook, with real
 * traffic from the client host to the mesh host.
 *
 * tp_tc_ingress ends classification (TC_ACT_OK) only for the SYNs it hands to the
 * proxy's listener and returns TC_ACT_UNSPEC for every other packet, so a filter
 * placed behind ours (a higher preference number; 49152 is what `tc filter add`
 * picks by default) keeps seeing the traffic. The foreign filter here is a small
 * counting program compiled at test time; uninstall must remove exactly our filter
 * and leave the foreign one attached and counting.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { TC_PRIORITY } from '../../src/ebpf/spec.js';
import {
  APP_PORTS, CLIENT_HOSTS, EXTRA_CLIENT_HOSTS, conformanceFlags, describeCli, engineFlags, ip, meshIp, probeTcp, runCli, startCast, uninstallFlags,
  type Family,
} from '../../src/sandbox/harness.js';
import { createSandbox } from '../../src/sandbox/sandbox.js';
import { runCommand, runIn } from '../../src/sandbox/commands.js';
import type { Sandbox } from '../../src/sandbox/types.js';
import { hostPort, ipOf } from '../../src/sandbox/wire.js';
import { buildDist, compileBpf } from './sandbox.js';
import { scaledMs } from '../../src/sandbox/timeout-scale.js';

/** The preference `tc filter add` gives a filter when none is asked for. */
const FOREIGN_PREF = 49152;

/** Slots of the foreign program's counter array. */
const SLOT = { all: 0, synToApp: 1, otherTcpToApp: 2, synToExcluded: 3 } as const;

const FOREIGN_SOURCE = `
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct { __uint(type, BPF_MAP_TYPE_ARRAY); __type(key, __u32); __type(value, __u64); __uint(max_entries, 4); } foreign_tc_hits SEC(".maps");

static __always_inline void bump(__u32 slot)
{
	__u64 *v = bpf_map_lookup_elem(&foreign_tc_hits, &slot);
	if (v)
		__sync_fetch_and_add(v, 1);
}

SEC("tc")
int foreign_tc(struct __sk_buff *skb)
{
	struct tcphdr th;
	__u32 off;
	__u8 proto;

	bump(${SLOT.all});
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr ip;
		if (bpf_skb_load_bytes_relative(skb, 0, &ip, sizeof(ip), BPF_HDR_START_NET))
			return TC_ACT_OK;
		proto = ip.protocol;
		off = ip.ihl * 4;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr ip6;
		if (bpf_skb_load_bytes_relative(skb, 0, &ip6, sizeof(ip6), BPF_HDR_START_NET))
			return TC_ACT_OK;
		proto = ip6.nexthdr;
		off = sizeof(ip6);
	} else {
		return TC_ACT_OK;
	}
	if (proto != IPPROTO_TCP)
		return TC_ACT_OK;
	if (bpf_skb_load_bytes_relative(skb, off, &th, sizeof(th), BPF_HDR_START_NET))
		return TC_ACT_OK;
	if (th.dest == bpf_htons(${APP_PORTS.plain}))
		bump(th.syn && !th.ack ? ${SLOT.synToApp} : ${SLOT.otherTcpToApp});
	else if (th.dest == bpf_htons(${APP_PORTS.excluded}) && th.syn && !th.ack)
		bump(${SLOT.synToExcluded});
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
`;

interface Filter {
  pref: number;
  kind: string;
  options?: { bpf_name?: string; prog?: { id?: number; name?: string } };
}

let sb: Sandbox | undefined;

beforeAll(async () => {
  await buildDist();
}, scaledMs(180_000));

afterEach(async () => {
  const s = sb;
  sb = undefined;
  // Deleting the namespaces removes both filters; unmounting the bpffs drops every pin.
  if (s) await s.destroy();
});

async function must(what: string, r: Promise<{ exitCode: number; stdout: string; stderr: string }>): Promise<string> {
  const out = await r;
  if (out.exitCode !== 0) throw new Error(`${what}: ${out.stderr.trim() || `exit ${out.exitCode}`}`);
  return out.stdout;
}

/** Compiles the counting program, loads it into the sandbox bpffs and attaches it behind ours. */
async function attachForeignTcFilter(s: Sandbox): Promise<{ counters: string }> {
  const obj = await compileBpf(s.tmpDir, 'foreign_tc', FOREIGN_SOURCE);
  const pinDir = join(s.bpffsPath, 'foreign');
  mkdirSync(pinDir);
  const prog = join(pinDir, 'foreign_tc');
  await must('bpftool prog load', runCommand(['bpftool', 'prog', 'load', obj, prog, 'pinmaps', pinDir]));
  await must('tc qdisc add', runIn(s, 'mesh', ['tc', 'qdisc', 'add', 'dev', s.iface.mesh, 'clsact']));
  await must(
    'tc filter add',
    runIn(s, 'mesh', ['tc', 'filter', 'add', 'dev', s.iface.mesh, 'ingress', 'pref', String(FOREIGN_PREF), 'bpf', 'object-pinned', prog, 'da']),
  );
  return { counters: join(pinDir, 'foreign_tc_hits') };
}

async function readCounters(pin: string): Promise<number[]> {
  const out = await must('bpftool map dump', runCommand(['bpftool', '-j', 'map', 'dump', 'pinned', pin]));
  const entries = JSON.parse(out) as Array<{ key: string[]; value: string[] }>;
  const counts = [0, 0, 0, 0];
  for (const e of entries) {
    const key = Buffer.from(e.key.map((x) => parseInt(x, 16))).readUInt32LE(0);
    counts[key] = Number(Buffer.from(e.value.map((x) => parseInt(x, 16))).readBigUInt64LE(0));
  }
  return counts;
}

async function ingressFilters(s: Sandbox): Promise<Array<{ pref: number; prog: string; id: number }>> {
  const out = await must('tc filter show', runIn(s, 'mesh', ['tc', '-j', 'filter', 'show', 'dev', s.iface.mesh, 'ingress']));
  // tc lists each filter twice (the chain head without options, then the handle); keep the ones naming a program.
  return (JSON.parse(out || '[]') as Filter[])
    .filter((f) => f.kind === 'bpf' && f.options?.prog?.id !== undefined)
    .map((f) => ({ pref: f.pref, prog: f.options?.prog?.name ?? '', id: f.options?.prog?.id ?? 0 }))
    .sort((a, b) => a.pref - b.pref);
}

const FAMILIES: Family[] = [4, 6];
const client = { host: 'client' as const };

describe('tc ingress next to a foreign filter on the same hook', () => {
  it('the foreign filter behind ours keeps seeing traffic while we steer inbound SYNs, and survives our uninstall', async () => {
    sb = await createSandbox({ name: `tpe2e-tccx-${process.pid}`, extraClientHosts: EXTRA_CLIENT_HOSTS });
    const s = sb;
    await startCast(s);
    const { counters } = await attachForeignTcFilter(s);
    const [foreign] = await ingressFilters(s);
    expect(foreign).toMatchObject({ pref: FOREIGN_PREF, prog: 'foreign_tc' });

    // Without tpctl: the app answers, and the foreign filter sees the SYN.
    const c0 = await readCounters(counters);
    for (const f of FAMILIES) {
      const r = await probeTcp(s, client, meshIp(s, f), APP_PORTS.plain);
      expect(r.reply, JSON.stringify(r)).toMatchObject({ via: 'app', local: hostPort(meshIp(s, f), APP_PORTS.plain) });
    }
    const c1 = await readCounters(counters);
    expect(c1[SLOT.synToApp]! - c0[SLOT.synToApp]!).toBeGreaterThanOrEqual(2);

    // The foreign pins live in the sandbox bpffs; tpctl's pin directory must be its own.
    const pins = ['--ebpf-bpffs-path', join(s.bpffsPath, 'tpctl')];
    const install = await runCli(s, ['install', 'transparent-proxy', ...conformanceFlags(s), ...engineFlags('ebpf', s), ...pins]);
    expect(install.exitCode, describeCli(install)).toBe(0);
    const both = await ingressFilters(s);
    expect(both.map((f) => [f.pref, f.prog])).toEqual([
      [TC_PRIORITY, 'tp_tc_ingress'],
      [FOREIGN_PREF, 'foreign_tc'],
    ]);
    expect(both[1]!.id).toBe(foreign!.id);

    // With tpctl: connections to the app port land on the proxy's inbound listener (steered
    // by our filter, which ends classification for those SYNs), and every other packet —
    // the rest of those connections, SYNs we do not steer — still reaches the foreign filter.
    const c2 = await readCounters(counters);
    for (const f of FAMILIES) {
      const r = await probeTcp(s, client, meshIp(s, f), APP_PORTS.plain);
      expect(r.reply, JSON.stringify(r)).toMatchObject({ via: 'proxy', listener: 'inbound', origDst: hostPort(meshIp(s, f), APP_PORTS.plain) });
      expect(r.reply.local).toBe(hostPort(meshIp(s, f), APP_PORTS.plain));
      expect(ipOf(r.reply.peer ?? ''), 'the client source address is preserved').toBe(ip(s, f, CLIENT_HOSTS.remote));
      const excluded = await probeTcp(s, client, meshIp(s, f), APP_PORTS.excluded);
      expect(excluded.reply, JSON.stringify(excluded)).toMatchObject({ via: 'app', local: hostPort(meshIp(s, f), APP_PORTS.excluded) });
    }
    const c3 = await readCounters(counters);
    expect(c3[SLOT.all]!).toBeGreaterThan(c2[SLOT.all]!);
    // ACKs, data and FINs of the two steered connections (at least 3 packets each).
    expect(c3[SLOT.otherTcpToApp]! - c2[SLOT.otherTcpToApp]!).toBeGreaterThanOrEqual(6);
    // The two SYNs to the excluded port were not steered: UNSPEC let the foreign filter see them.
    expect(c3[SLOT.synToExcluded]! - c2[SLOT.synToExcluded]!).toBeGreaterThanOrEqual(2);
    // The steered SYNs ended at our filter (TC_ACT_OK): proof that ours runs first.
    expect(c3[SLOT.synToApp]).toBe(c2[SLOT.synToApp]);

    const uninstall = await runCli(s, ['uninstall', 'transparent-proxy', ...uninstallFlags('ebpf', s), ...pins]);
    expect(uninstall.exitCode, describeCli(uninstall)).toBe(0);
    expect(await ingressFilters(s)).toEqual([{ pref: FOREIGN_PREF, prog: 'foreign_tc', id: foreign!.id }]);
    const qdiscs = await must('tc qdisc show', runIn(s, 'mesh', ['tc', 'qdisc', 'show', 'dev', s.iface.mesh]));
    expect(qdiscs, 'the clsact qdisc we did not create stays').toContain('clsact');

    // After uninstall: the app answers again, and the foreign filter sees those SYNs once more.
    for (const f of FAMILIES) {
      const r = await probeTcp(s, client, meshIp(s, f), APP_PORTS.plain);
      expect(r.reply, JSON.stringify(r)).toMatchObject({ via: 'app', local: hostPort(meshIp(s, f), APP_PORTS.plain) });
    }
    const c4 = await readCounters(counters);
    expect(c4[SLOT.synToApp]! - c3[SLOT.synToApp]!).toBeGreaterThanOrEqual(2);
    expect(c4[SLOT.all]!).toBeGreaterThan(c3[SLOT.all]!);
  });
});
