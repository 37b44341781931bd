/**
 * Install / reinstall / uninstall of the eBPF engine on the real kernel, in a
 * sandbox (own netns, child cgroup, bpffs). Traffic behaviour is the conformance
 * suite's job (test/e2e); this file proves the lifecycle promises: uninstall
 * leaves nothing, a failed install leaves nothing, a second install changes
 * nothing, a reinstall with new settings updates maps in place, other programs on
 * the same hooks are never disturbed.
 */
import { appendFileSync, copyFileSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { EbpfSandbox, PREBUILT, buildDist, buildForeignObject, type EngineRun } from './sandbox.js';
import { scaledMs } from '../../src/sandbox/timeout-scale.js';
import { requireEbpfKernel } from '../../src/ebpf/preflight.js';
import { probeNetnsCheck } from '../../src/ebpf/netns-check.js';
import { SOCKOPS_PROGRAM } from '../../src/ebpf/spec.js';
import { KernelTooOldError } from '../../src/errors.js';

/** The one reason to skip: the engine's own typed "kernel too old" error (the VM matrix runs 5.10). */
function kernelTooOld(): string {
  try {
    requireEbpfKernel();
    return '';
  } catch (e) {
    if (e instanceof KernelTooOldError) return e.message;
    throw e;
  }
}
const TOO_OLD = kernelTooOld();

let sb: EbpfSandbox | undefined;

beforeAll(async () => {
  await buildDist();
}, scaledMs(180_000));

afterEach(async () => {
  const s = sb;
  sb = undefined;
  if (s) await s.destroy();
});

function ok(r: EngineRun): { changed: boolean; lines: string[] } {
  if (!r.result) throw new Error(`engine failed: ${r.error?.oneLine ?? 'no result'}\n${r.stderr}`);
  return r.result;
}

async function expectNothingLeft(s: EbpfSandbox, tpPath: string, qdiscsBefore: string[]): Promise<void> {
  expect(await s.cgroupPrograms()).toEqual([]);
  expect(await s.tcFilters()).toEqual([]);
  expect(await s.qdiscKinds()).toEqual(qdiscsBefore);
  expect(existsSync(tpPath), `${tpPath} should be gone`).toBe(false);
}

/** bpftool -j prints raw keys/values as arrays of "0xNN" strings (plus `formatted` when BTF is there). */
function hexBytes(v: unknown): Buffer {
  return Buffer.from((v as string[]).map((x) => parseInt(x, 16)));
}

async function mapDump(pin: string): Promise<Array<{ key: Buffer; value: Buffer }>> {
  const r = await execa('bpftool', ['-j', 'map', 'dump', 'pinned', pin], { timeout: scaledMs(10_000) });
  return (JSON.parse(String(r.stdout)) as Array<{ key: unknown; value: unknown }>).map((e) => ({ key: hexBytes(e.key), value: hexBytes(e.value) }));
}

/** Keys of a port map (__u16, host order). */
async function portKeys(pin: string): Promise<number[]> {
  return (await mapDump(pin)).map((e) => e.key.readUInt16LE(0)).sort((a, b) => a - b);
}

async function tcProgIds(s: EbpfSandbox): Promise<number[]> {
  return (await s.tcFilters()).flatMap((f) => {
    const id = (f as { options?: { prog?: { id?: number } } }).options?.prog?.id;
    return id === undefined ? [] : [id];
  });
}

/** Program release is deferred (RCU), so poll briefly. */
async function progFreed(id: number): Promise<boolean> {
  for (let i = 0; i < 40; i++) {
    const r = await execa('bpftool', ['prog', 'show', 'id', String(id)], { reject: false, timeout: scaledMs(10_000) });
    if (r.exitCode !== 0) return true;
    await new Promise((res) => setTimeout(res, 50));
  }
  return false;
}

async function linkIds(s: EbpfSandbox): Promise<number[]> {
  return (await s.cgroupPrograms()).map((p) => p.id).sort((a, b) => a - b);
}

describe.skipIf(TOO_OLD)(`eBPF engine lifecycle${TOO_OLD ? ` (skipped: ${TOO_OLD})` : ''}`, () => {
  it('installs, is idempotent, updates maps in place, and uninstalls without a trace', async () => {
    sb = await EbpfSandbox.create('life');
    const tp = join(sb.bpffs, 'tp');
    const qdiscs = await sb.qdiscKinds();
    const cfg = sb.config();

    const first = ok(await sb.install(cfg));
    expect(first.changed).toBe(true);
    const progs = await sb.cgroupPrograms();
    expect(progs.map((p) => p.name).sort()).toEqual(
      ['tp_connect4', 'tp_connect6', 'tp_egress', 'tp_getpeername4', 'tp_getpeername6', 'tp_getsockopt', 'tp_recvmsg4', 'tp_recvmsg6', 'tp_sendmsg4', 'tp_sendmsg6', 'tp_setsockopt', SOCKOPS_PROGRAM[probeNetnsCheck()]].sort(),
    );
    // sk_lookup is attached to the network namespace, not the cgroup: its link is pinned with the others.
    expect(existsSync(join(tp, 'links', 'tp_sk_lookup'))).toBe(true);
    const filters = await sb.tcFilters();
    expect(JSON.stringify(filters)).toContain('tp_tc_ingress');
    expect(await sb.qdiscKinds()).toContain('clsact');
    expect(existsSync(join(tp, 'tp_state_v1'))).toBe(true);
    expect(existsSync(join(tp, 'links', 'tp_connect4'))).toBe(true);
    expect(await portKeys(join(tp, 'tp_out_port_v1'))).toEqual([22]);

    // Same settings: nothing to do.
    const again = ok(await sb.install(cfg));
    expect(again.changed).toBe(false);

    // Another excluded port: maps change, links (program ids) stay.
    const idsBefore = await linkIds(sb);
    const cfg2 = sb.config();
    cfg2.outbound.excludePorts = [{ from: 22, to: 22 }, { from: 8080, to: 8081 }];
    const upd = ok(await sb.install(cfg2));
    expect(upd.changed).toBe(true);
    expect(upd.lines.join('\n')).toContain('in place');
    expect(await linkIds(sb)).toEqual(idsBefore);
    expect(await portKeys(join(tp, 'tp_out_port_v1'))).toEqual([22, 8080, 8081]);
    // And back: a stale key is deleted.
    ok(await sb.install(cfg));
    expect(await portKeys(join(tp, 'tp_out_port_v1'))).toEqual([22]);

    const skLookup = await execa('bpftool', ['-j', 'link', 'show', 'pinned', join(tp, 'links', 'tp_sk_lookup')], { timeout: scaledMs(10_000) });
    const skLookupLink = JSON.parse(String(skLookup.stdout)) as { type: string; prog_id: number };
    expect(skLookupLink.type).toBe('netns');
    const progIds = [...(await linkIds(sb)), ...(await tcProgIds(sb)), skLookupLink.prog_id];
    expect(progIds).toHaveLength(14);
    const un = ok(await sb.uninstall());
    expect(un.changed).toBe(true);
    await expectNothingLeft(sb, tp, qdiscs);
    // Nothing references the programs any more, so the kernel frees them.
    for (const id of progIds) expect(await progFreed(id), `program ${id} still loaded`).toBe(true);
    // A second uninstall finds nothing to do.
    const un2 = ok(await sb.uninstall());
    expect(un2.changed).toBe(false);
  });

  it('mounts a bpffs itself when the path is not on one, and unmounts it on uninstall', async () => {
    sb = await EbpfSandbox.create('mnt');
    const path = join(sb.dir, 'run', 'tpctl', 'bpf');
    const cfg = sb.config({ bpffsPath: path });
    ok(await sb.install(cfg));
    expect(sb.bpfMountsUnder()).toContain(path);
    ok(await sb.uninstall(path));
    expect(sb.bpfMountsUnder()).not.toContain(path);
    expect(existsSync(join(sb.dir, 'run')), 'directories it created are removed').toBe(false);

    // A pin someone else put into the bpffs we mounted keeps it mounted.
    ok(await sb.install(cfg));
    await execa('bpftool', ['map', 'create', join(path, 'someone_else'), 'type', 'array', 'key', '4', 'value', '4', 'entries', '1', 'name', 'someone_else']);
    const un = ok(await sb.uninstall(path));
    expect(un.changed).toBe(true);
    expect(sb.bpfMountsUnder()).toContain(path);
    expect(readdirSync(path).filter((f) => !f.endsWith('.debug'))).toEqual(['someone_else']);
    expect(await sb.cgroupPrograms()).toEqual([]);
  });

  for (const step of ['after-cgroup-attach', 'after-tc-attach']) {
    it(`a failure injected ${step} leaves nothing behind`, async () => {
      sb = await EbpfSandbox.create('fail');
      const tp = join(sb.bpffs, 'tp');
      const mounted = join(sb.dir, 'm', 'bpf');
      const qdiscs = await sb.qdiscKinds();
      for (const path of [tp, mounted]) {
        const r = await sb.install(sb.config({ bpffsPath: path }), { TPCTL_FAIL_AT: step });
        expect(r.error?.oneLine).toMatch(new RegExp(`install failed: .*${step}.*; nothing was left behind`));
        await expectNothingLeft(sb, path, qdiscs);
      }
      expect(sb.bpfMountsUnder()).toEqual([sb.bpffs]);
      expect(existsSync(join(sb.dir, 'm'))).toBe(false);
    });
  }

  it('a failed in-place update puts the previous settings back', async () => {
    sb = await EbpfSandbox.create('upd');
    const tp = join(sb.bpffs, 'tp');
    ok(await sb.install(sb.config()));
    const ids = await linkIds(sb);
    const cfg2 = sb.config();
    cfg2.outbound.excludePorts = [{ from: 9000, to: 9001 }];
    const r = await sb.install(cfg2, { TPCTL_FAIL_AT: 'after-cgroup-attach' });
    expect(r.error?.oneLine).toMatch(/install failed: .*; the previous settings were kept/);
    expect(await portKeys(join(tp, 'tp_out_port_v1'))).toEqual([22]);
    expect(await linkIds(sb)).toEqual(ids);
    // The record still describes the old settings: the same install is a no-op.
    expect(ok(await sb.install(sb.config())).changed).toBe(false);
    ok(await sb.uninstall());
    expect(await sb.cgroupPrograms()).toEqual([]);
  });

  it('refuses to uninstall from another network namespace and touches nothing', async () => {
    sb = await EbpfSandbox.create('ns');
    ok(await sb.install(sb.config()));
    const before = { progs: await linkIds(sb), filters: await sb.tcFilters() };
    const other = `${sb.name}-o`;
    await execa('ip', ['netns', 'add', other]);
    try {
      const r = await sb.uninstall(join(sb.bpffs, 'tp'), `/run/netns/${other}`);
      expect(r.error?.oneLine).toMatch(/the tc filter was attached in network namespace net:\[\d+\], this process runs in net:\[\d+\]/);
    } finally {
      await execa('ip', ['netns', 'del', other]);
    }
    expect({ progs: await linkIds(sb), filters: await sb.tcFilters() }).toEqual(before);
    expect(ok(await sb.uninstall()).changed).toBe(true);
    expect(await sb.cgroupPrograms()).toEqual([]);
  });

  it('reloads the programs when the object files changed (an upgrade)', async () => {
    sb = await EbpfSandbox.create('upg');
    const v1 = join(sb.dir, 'v1');
    const v2 = join(sb.dir, 'v2');
    mkdirSync(v1);
    mkdirSync(v2);
    for (const f of readdirSync(PREBUILT).filter((x) => x.endsWith('.bpf.o'))) {
      copyFileSync(join(PREBUILT, f), join(v1, f));
      copyFileSync(join(PREBUILT, f), join(v2, f));
    }
    // Trailing bytes change the file digest but not what libbpf reads from the ELF.
    appendFileSync(join(v2, 'sockops.bpf.o'), Buffer.alloc(8));
    const cfg = sb.config();
    cfg.ebpf.programsSourcePath = v1;
    ok(await sb.install(cfg));
    const before = await linkIds(sb);
    cfg.ebpf.programsSourcePath = v2;
    const r = await sb.install(cfg);
    expect(ok(r).changed).toBe(true);
    expect(r.logs.join('\n')).toContain('replacing the existing eBPF install');
    const after = await linkIds(sb);
    expect(after).toHaveLength(12);
    expect(after.some((id) => before.includes(id))).toBe(false);
    ok(await sb.uninstall());
    expect(await sb.cgroupPrograms()).toEqual([]);
  });

  it('keeps a clsact qdisc it did not create', async () => {
    sb = await EbpfSandbox.create('qd');
    await sb.sh(`tc qdisc add dev ${sb.iface} clsact`);
    ok(await sb.install(sb.config()));
    ok(await sb.uninstall());
    expect(await sb.qdiscKinds()).toContain('clsact');
    expect(await sb.tcFilters()).toEqual([]);
  });

  it('attaches no tc or sk_lookup program when inbound redirection is off', async () => {
    sb = await EbpfSandbox.create('noin');
    const cfg = sb.config();
    cfg.inbound.enabled = false;
    ok(await sb.install(cfg));
    expect(await sb.tcFilters()).toEqual([]);
    expect(await sb.qdiscKinds()).not.toContain('clsact');
    expect(existsSync(join(sb.bpffs, 'tp', 'links', 'tp_sk_lookup'))).toBe(false);
    // Turning inbound on changes the attach points: the install is replaced and gains the filter.
    cfg.inbound.enabled = true;
    ok(await sb.install(cfg));
    expect(JSON.stringify(await sb.tcFilters())).toContain('tp_tc_ingress');
    expect(existsSync(join(sb.bpffs, 'tp', 'links', 'tp_sk_lookup'))).toBe(true);
    ok(await sb.uninstall());
    expect(await sb.tcFilters()).toEqual([]);
  });

  it('leaves a foreign program on the same cgroup hook attached and running', async () => {
    sb = await EbpfSandbox.create('frgn');
    const obj = await buildForeignObject(sb.dir);
    const pins = join(sb.bpffs, 'foreign');
    await execa('bpftool', ['prog', 'load', obj, join(sb.bpffs, 'foreign_prog'), 'type', 'cgroup/connect4', 'pinmaps', pins], { timeout: scaledMs(30_000) });
    await execa('bpftool', ['cgroup', 'attach', sb.cgroup, 'connect4', 'pinned', join(sb.bpffs, 'foreign_prog'), 'multi'], { timeout: scaledMs(10_000) });

    const hits = async (): Promise<number> => {
      const [entry] = await mapDump(join(pins, 'foreign_hits'));
      return entry ? Number(entry.value.readBigUInt64LE(0)) : 0;
    };
    // A connect from a process inside the sandbox cgroup, to loopback (never redirected).
    const connectFromCgroup = async (): Promise<void> => {
      const script =
        `const s=require('net').createServer().listen(0,'127.0.0.1',()=>{const c=require('net').connect(s.address().port,'127.0.0.1',()=>{c.end();s.close();});c.on('error',()=>s.close());});setTimeout(()=>process.exit(0),${scaledMs(3000)}).unref();`;
      await sb!.sh(`echo $$ > ${sb!.cgroup}/cgroup.procs && exec ${process.execPath} -e "${script}"`);
    };

    await connectFromCgroup();
    const h0 = await hits();
    expect(h0).toBeGreaterThan(0);

    ok(await sb.install(sb.config()));
    let names = (await sb.cgroupPrograms()).map((p) => p.name);
    expect(names).toContain('foreign_c4');
    expect(names).toContain('tp_connect4');
    await connectFromCgroup();
    const h1 = await hits();
    expect(h1).toBeGreaterThan(h0);

    ok(await sb.uninstall());
    names = (await sb.cgroupPrograms()).map((p) => p.name);
    expect(names).toEqual(['foreign_c4']);
    await connectFromCgroup();
    expect(await hits()).toBeGreaterThan(h1);
  });

  it('records the flow of a redirected connect and forgets its socket once closed', async () => {
    sb = await EbpfSandbox.create('sops');
    const tp = join(sb.bpffs, 'tp');
    ok(await sb.install(sb.config()));
    // A connect from inside the sandbox cgroup to an outside address, redirected to
    // 127.0.0.1:15001: accepted there (a listener stands in for the proxy), then refused.
    for (const listening of [true, false]) {
      const script =
        "const net=require('net');const go=()=>{const c=net.connect(80,'192.0.2.1',()=>c.end());c.on('error',()=>{});c.on('close',()=>process.exit(0));};" +
        `if(${listening})net.createServer((s)=>{s.resume();s.end();}).listen(15001,'127.0.0.1',go);else go();setTimeout(()=>process.exit(2),${scaledMs(5000)}).unref();`;
      await sb.sh(`echo $$ > ${sb.cgroup}/cgroup.procs && exec ${process.execPath} -e "${script}"`);
      expect(await mapDump(join(tp, 'tp_orig_dst_v1')), 'the closed socket left its cookie entry').toEqual([]);
      expect(await mapDump(join(tp, 'tp_flow_v1'))).toHaveLength(listening ? 1 : 2);
    }
  });

  it('refuses a cgroup path outside the cgroup2 mount and changes nothing', async () => {
    sb = await EbpfSandbox.create('pre');
    const cfg = sb.config();
    cfg.ebpf.cgroupPath = sb.dir;
    const r = await sb.install(cfg);
    expect(r.error?.code).toBe('EPREFLIGHT');
    expect(r.error?.oneLine).toContain('not inside a cgroup2 mount');
    expect(existsSync(join(sb.bpffs, 'tp'))).toBe(false);

    const cfg2 = sb.config();
    cfg2.ebpf.instanceIp = { ipv4: '10.99.99.99' };
    const r2 = await sb.install(cfg2);
    expect(r2.error?.oneLine).toContain('10.99.99.99: not an address of this host');

    const cfg3 = sb.config();
    cfg3.ebpf.tcAttachIface = 'nope0';
    const r3 = await sb.install(cfg3);
    expect(r3.error?.oneLine).toContain('nope0: no such interface');

    await sb.sh(`ip link set ${sb.iface} down`);
    // IPv6 addresses leave a downed link; the IPv4 one stays, so preflight reaches the interface check.
    const cfg4 = sb.config();
    cfg4.ebpf.instanceIp = { ipv4: cfg4.ebpf.instanceIp.ipv4 };
    const r4 = await sb.install(cfg4);
    expect(r4.error?.oneLine).toContain('is down');
    expect(await sb.cgroupPrograms()).toEqual([]);
  });
});
