/**
 * What the conformance suite and the demo share: the cast of processes in a
 * sandbox (proxy, app, remote servers), probes, the real CLI run inside the mesh
 * host, and snapshots of the host state an engine may change.
 *
 * Scripts run from dist/ (build first); the path is found relative to this file,
 * which lives two levels below the repository root both as src/ and as dist/.
 */
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { KernelTooOldError } from '../errors.js';
import { listTree } from './fs.js';
import { runCommand, runIn, type CommandResult } from './commands.js';
import { spawnIn } from './processes.js';
import type { Sandbox, SandboxHost, SandboxProcess } from './types.js';
import { hostPort } from './wire.js';
import { cgroupOwnPrograms } from './cgroup-programs.js';
import { scaledMs } from './timeout-scale.js';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
export const distDir = join(repoRoot, 'dist');
const cliPath = join(distDir, 'cli.js');
const script = (name: string): string => join(distDir, 'sandbox', `${name}.js`);

export const PROXY_UID = 5678;
export const APP_UID = 1234;
/** A second ordinary uid, to show per-uid exclusions are per uid. */
export const OTHER_UID = 1235;
export const PORTS = { outbound: 15001, inbound: 15006, dns: 15053 } as const;

/**
 * Roles of the addresses on the client host (host numbers in 10.231.N.x / fd00:231:N::x).
 * .1 is the "remote" server and the nameserver in resolv.conf.
 */
export const CLIENT_HOSTS = {
  remote: 1,
  unlistedDns: 3,
  excludedOutboundIp: 4,
  excludedInboundSource: 5,
} as const;
export const EXTRA_CLIENT_HOSTS = [CLIENT_HOSTS.unlistedDns, CLIENT_HOSTS.excludedOutboundIp, CLIENT_HOSTS.excludedInboundSource];

/** Ports on the client host's remote server. */
export const REMOTE_PORTS = { plain: 8080, excluded: 8081, uidExcluded: 8082, laterExcluded: 8083 } as const;
/** Ports the mesh host's app listens on. */
export const APP_PORTS = { plain: 9080, excluded: 9081 } as const;

export type Family = 4 | 6;
export const ip = (sb: Sandbox, family: Family, host: number): string => (family === 4 ? sb.v4(host) : sb.v6(host));
export const meshIp = (sb: Sandbox, family: Family): string => (family === 4 ? sb.ipv4.mesh : sb.ipv6.mesh);
export const loopback = (family: Family): string => (family === 4 ? '127.0.0.1' : '::1');

function requireBuilt(): void {
  for (const name of ['proxy', 'app', 'probe']) {
    if (!existsSync(script(name))) throw new Error(`${script(name)} missing: build first (npx tsc -p tsconfig.json)`);
  }
}

export interface Cast {
  proxy: SandboxProcess;
  app: SandboxProcess;
  remote: SandboxProcess;
}

const READY_TIMEOUT_MS = 10_000;

function spawnProxy(sb: Sandbox): SandboxProcess {
  return spawnIn(sb, 'mesh', {
    uid: PROXY_UID,
    inCgroup: true,
    argv: [process.execPath, script('proxy'), '--outbound', String(PORTS.outbound), '--inbound', String(PORTS.inbound), '--dns', String(PORTS.dns)],
  });
}

/** (Re)starts the test proxy alone, e.g. after a test stopped it; resolves when it listens. */
export async function startProxy(sb: Sandbox): Promise<SandboxProcess> {
  requireBuilt();
  const proxy = spawnProxy(sb);
  await proxy.waitForLine((l) => l.includes('"ready"'), READY_TIMEOUT_MS);
  return proxy;
}

/** Starts the proxy and the app on the mesh host (in the cgroup) and the remote servers on the client host. */
export async function startCast(sb: Sandbox): Promise<Cast> {
  requireBuilt();
  const node = process.execPath;
  const proxy = spawnProxy(sb);
  const app = spawnIn(sb, 'mesh', {
    uid: APP_UID,
    inCgroup: true,
    argv: [node, script('app'), '--via', 'app', '--tcp', Object.values(APP_PORTS).join(',')],
  });
  const clientAddresses = [1, ...EXTRA_CLIENT_HOSTS].flatMap((h) => [sb.v4(h), sb.v6(h)]);
  // The remote side is root so it can bind :53; it is on the client host, outside the cgroup.
  const remote = spawnIn(sb, 'client', {
    argv: [node, script('app'), '--via', 'remote', '--tcp', Object.values(REMOTE_PORTS).join(','), '--udp', '53', '--dns-tcp', '53', '--addresses', clientAddresses.join(',')],
  });
  const isReady = (l: string): boolean => l.includes('"ready"');
  await Promise.all([proxy, app, remote].map((p) => p.waitForLine(isReady, scaledMs(READY_TIMEOUT_MS))));
  return { proxy, app, remote };
}

/** What a server greeted the probe with. */
export interface Greeting {
  via: string;
  listener?: string;
  origDst?: string | null;
  origDstFrom?: string;
  getsockoptError?: string;
  peer?: string;
  local?: string;
}

export interface TcpProbeResult {
  reply: Greeting;
  peername: string;
  sockname: string;
}

export interface UdpProbeResult {
  reply: Greeting;
  from: string;
  peername: string | null;
}

export interface ProbeFrom {
  host: SandboxHost;
  /** uid to run as; mesh-host probes run in the cgroup. */
  uid?: number;
}

const PROBE_TIMEOUT_MS = 3_000;

function spawnProbe(sb: Sandbox, from: ProbeFrom, args: string[]): SandboxProcess {
  return spawnIn(sb, from.host, {
    uid: from.uid,
    inCgroup: from.host === 'mesh',
    argv: [process.execPath, script('probe'), ...args, '--timeout', String(scaledMs(PROBE_TIMEOUT_MS))],
  });
}

function tcpProbeArgs(host: string, port: number, local: string | undefined): string[] {
  return ['tcp', '--host', host, '--port', String(port), ...(local ? ['--local', local] : [])];
}

async function runProbe(sb: Sandbox, from: ProbeFrom, args: string[]): Promise<unknown> {
  const p = spawnProbe(sb, from, args);
  p.closeStdin();
  const code = await p.waitForExit(scaledMs(PROBE_TIMEOUT_MS + 5_000)).catch(async (e: unknown) => {
    await p.stop();
    throw e;
  });
  const last = p.lines.filter(Boolean).at(-1) ?? '';
  let parsed: { error?: string } | undefined;
  try {
    parsed = JSON.parse(last) as { error?: string };
  } catch {
    parsed = undefined;
  }
  if (code !== 0 || !parsed || parsed.error) {
    throw new Error(`probe ${args.join(' ')} (uid ${from.uid ?? 0} on ${from.host}) failed: ${parsed?.error ?? (last || p.stderr().trim() || `exit ${code}`)}`);
  }
  return parsed;
}

export function probeTcp(sb: Sandbox, from: ProbeFrom, host: string, port: number, local?: string): Promise<TcpProbeResult> {
  return runProbe(sb, from, tcpProbeArgs(host, port, local)) as Promise<TcpProbeResult>;
}

export function probeUdp(sb: Sandbox, from: ProbeFrom, host: string, port: number, connected: boolean): Promise<UdpProbeResult> {
  const args = ['udp', '--host', host, '--port', String(port)];
  if (connected) args.push('--connected');
  return runProbe(sb, from, args) as Promise<UdpProbeResult>;
}

export interface DnsProbeResult {
  reply: Greeting;
  /** 'dns': a DNS answer came back; 'greeting': a plain TCP listener (the outbound one) greeted instead. */
  answer: 'dns' | 'greeting';
  peername: string | null;
  /** UDP only: the source of the answer as recvmsg reports it. */
  from?: string;
}

/** One real DNS query (TXT, dns-wire.ts) over UDP (connected or not) or TCP. */
export function probeDns(sb: Sandbox, from: ProbeFrom, host: string, transport: 'udp' | 'tcp', connected = false): Promise<DnsProbeResult> {
  const args = [`dns-${transport}`, '--host', host, '--port', '53'];
  if (connected && transport === 'udp') args.push('--connected');
  return runProbe(sb, from, args) as Promise<DnsProbeResult>;
}

/** A TCP connection kept open: its greeting, and a way to check it still carries data. */
export interface HeldConnection {
  first: TcpProbeResult;
  /** Sends a line and resolves when it comes back (rejects when the connection is gone). */
  echo(text: string, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export async function holdTcp(sb: Sandbox, from: ProbeFrom, host: string, port: number, local?: string): Promise<HeldConnection> {
  const p = spawnProbe(sb, from, [...tcpProbeArgs(host, port, local), '--hold']);
  const firstLine = await p.waitForLine((l) => l.startsWith('{'), scaledMs(PROBE_TIMEOUT_MS + 5_000)).catch(async (e: unknown) => {
    await p.stop();
    throw e;
  });
  const first = JSON.parse(firstLine) as TcpProbeResult & { error?: string };
  if (first.error) {
    await p.stop();
    throw new Error(`hold ${hostPort(host, port)}: ${first.error}`);
  }
  return {
    first,
    async echo(text, timeoutMs = scaledMs(3_000)) {
      p.writeLine(text);
      const want = JSON.stringify({ echo: text });
      await p.waitForLine((l) => l === want, timeoutMs);
    },
    async close() {
      p.closeStdin();
      await p.waitForExit(scaledMs(3_000)).catch(() => p.stop());
    },
  };
}

// ---------------------------------------------------------------------------------
// The real CLI, inside the mesh host.

export type EngineName = 'iptables-nft' | 'iptables-legacy' | 'nftables' | 'ebpf';

/**
 * The engines an engine-parameterised suite runs: all of `all`, or those named in
 * TPCTL_TEST_ENGINES (comma or space separated). The VM kernel matrix sets "ebpf":
 * the iptables engines do not depend on the kernel's BPF support.
 */
export function selectEngines<T extends { engine: EngineName }>(all: T[], env: NodeJS.ProcessEnv = process.env): T[] {
  const wanted = (env.TPCTL_TEST_ENGINES ?? '').split(/[\s,]+/).filter(Boolean);
  if (wanted.length === 0) return all;
  const known = all.map((e) => e.engine as string);
  const unknown = wanted.filter((w) => !known.includes(w));
  if (unknown.length) throw new Error(`TPCTL_TEST_ENGINES: unknown engine ${unknown.join(', ')} (expected ${known.join(', ')})`);
  return all.filter((e) => wanted.includes(e.engine));
}

/** Flags that select and place the engine in this sandbox. */
export function engineFlags(engine: EngineName, sb: Sandbox): string[] {
  if (engine === 'ebpf') {
    return [
      '--ebpf-enabled',
      '--ebpf-instance-ip', `${sb.ipv4.mesh},${sb.ipv6.mesh}`,
      '--ebpf-bpffs-path', sb.bpffsPath,
      '--ebpf-cgroup-path', sb.cgroupPath,
      '--ebpf-tc-attach-iface', sb.iface.mesh,
    ];
  }
  if (engine === 'nftables') return ['--engine', 'nftables'];
  return ['--iptables-backend', engine === 'iptables-nft' ? 'nft' : 'legacy'];
}

export function uninstallFlags(engine: EngineName, sb: Sandbox): string[] {
  if (engine === 'ebpf') return ['--ebpf-enabled', '--ebpf-bpffs-path', sb.bpffsPath];
  // A plain uninstall must find tpctl's nftables table by itself.
  if (engine === 'nftables') return [];
  return ['--iptables-backend', engine === 'iptables-nft' ? 'nft' : 'legacy'];
}

/** The settings every conformance install uses (the excluded values match the cast above). */
export function conformanceFlags(sb: Sandbox, opts: { dns?: 'resolvconf' | 'all' | 'off'; extraExcludedOutboundPorts?: number[] } = {}): string[] {
  const h = CLIENT_HOSTS;
  return [
    '--kuma-dp-user', String(PROXY_UID),
    '--redirect-outbound-port', String(PORTS.outbound),
    '--redirect-inbound-port', String(PORTS.inbound),
    '--redirect-dns-port', String(PORTS.dns),
    '--exclude-outbound-ports', [REMOTE_PORTS.excluded, ...(opts.extraExcludedOutboundPorts ?? [])].join(','),
    '--exclude-outbound-ips', `${sb.v4(h.excludedOutboundIp)}/32,${sb.v6(h.excludedOutboundIp)}`,
    '--exclude-outbound-ports-for-uids', `tcp:${REMOTE_PORTS.uidExcluded}:${APP_UID}`,
    // OTHER_UID's DNS is not captured (a per-uid UDP exclusion); APP_UID's is.
    '--exclude-outbound-ports-for-uids', `udp:53:${OTHER_UID}`,
    '--exclude-inbound-ports', String(APP_PORTS.excluded),
    '--exclude-inbound-ips', `${sb.v4(h.excludedInboundSource)},${sb.v6(h.excludedInboundSource)}/128`,
    ...({ resolvconf: ['--redirect-dns'], all: ['--redirect-all-dns-traffic'], off: ['--redirect-dns=false'] } as const)[opts.dns ?? 'resolvconf'],
    '--resolv-conf-path', sb.resolvConfPath,
  ];
}

export async function runCli(sb: Sandbox, args: string[], env: Record<string, string> = {}, input?: string): Promise<CommandResult> {
  if (!existsSync(cliPath)) throw new Error(`${cliPath} missing: build first (npx tsc -p tsconfig.json)`);
  return runIn(sb, 'mesh', [process.execPath, cliPath, ...args], { env: { ...process.env, ...env } as Record<string, string>, timeoutMs: scaledMs(30_000), input });
}

export function describeCli(r: CommandResult): string {
  return `exit ${r.exitCode}${r.timedOut ? ' (timed out)' : ''}; stdout: ${r.stdout.trim().slice(-800)}; stderr: ${r.stderr.trim().slice(-800)}`;
}

/** KernelTooOldError's exit code; its PreflightError siblings share it, so the line decides. */
const KERNEL_TOO_OLD_EXIT = new KernelTooOldError('').exitCode;
/** The line the CLI prints for the one KernelTooOldError there is (src/host/kernel.ts requireKernel). */
const KERNEL_TOO_OLD_LINE = /^error: .+: kernel \S+ is too old, need \d+\.\d+ or newer\b/m;

/** The one signal a test may skip on: the CLI failed with a KernelTooOldError. */
export function isKernelTooOld(r: CommandResult): boolean {
  return r.exitCode === KERNEL_TOO_OLD_EXIT && KERNEL_TOO_OLD_LINE.test(r.stderr);
}

// ---------------------------------------------------------------------------------
// Host state an engine may change, as comparable text.

/**
 * iptables-save of every table, both families, minus what changes by itself
 * (comments, counters). Both backends are included: an engine must not touch the
 * one it was not asked to use.
 */
async function iptablesState(sb: Sandbox): Promise<string> {
  const out: string[] = [];
  const tools = ['nft', 'legacy'].flatMap((b) => [`iptables-${b}-save`, `ip6tables-${b}-save`]);
  for (const tool of tools) {
    const r = await runIn(sb, 'mesh', [tool]);
    if (r.exitCode !== 0) throw new Error(`${tool}: ${r.stderr.trim()}`);
    out.push(`## ${tool}`, ...normalizeIptablesSave(r.stdout));
  }
  return out.join('\n');
}

export function normalizeIptablesSave(text: string): string[] {
  return text
    .split('\n')
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => l.replace(/\[\d+:\d+\]/g, '[0:0]'));
}

/** Rules somebody else owns, in every table an engine might touch; uninstall must leave them. */
export async function addForeignIptablesRules(sb: Sandbox, backend: 'nft' | 'legacy'): Promise<void> {
  const rules = (other: string): string =>
    [
      '*raw', ':FOREIGN_RAW - [0:0]', `-A PREROUTING -s ${other} -j FOREIGN_RAW`, 'COMMIT',
      '*mangle', `-A OUTPUT -d ${other} -j MARK --set-xmark 0x7/0xffffffff`, 'COMMIT',
      '*nat', ':FOREIGN_NAT - [0:0]', `-A OUTPUT -d ${other} -p tcp --dport 7 -j FOREIGN_NAT`, `-A FOREIGN_NAT -j RETURN`, 'COMMIT',
      '*filter', ':FOREIGN_FILTER - [0:0]', `-A INPUT -s ${other} -j FOREIGN_FILTER`, '-A FOREIGN_FILTER -j ACCEPT', 'COMMIT',
      '',
    ].join('\n');
  for (const [tool, other] of [[`iptables-${backend}-restore`, '192.0.2.7/32'], [`ip6tables-${backend}-restore`, '2001:db8::7/128']] as const) {
    const r = await runIn(sb, 'mesh', [tool, '--noflush'], { input: rules(other) });
    if (r.exitCode !== 0) throw new Error(`${tool}: ${r.stderr.trim()}`);
  }
}

const BPF_PRELOAD_ENTRIES = new Set(['maps.debug', 'progs.debug']);

/**
 * Attaches a do-nothing cgroup/connect4 program that tpctl does not own (compiled
 * from test/e2e/fixtures, attached with BPF_F_ALLOW_MULTI), to prove tpctl coexists
 * with it and leaves it alone. Its pin is removed once it is attached (the cgroup
 * holds the program): tpctl's pin directory must hold nothing but tpctl's pins.
 */
export async function attachForeignCgroupProgram(sb: Sandbox): Promise<void> {
  const src = join(repoRoot, 'test', 'e2e', 'fixtures', 'foreign_connect4.bpf.c');
  const obj = join(sb.tmpDir, 'foreign_connect4.bpf.o');
  const cc = await runCommand(['clang', '-O2', '-g', '-target', 'bpf', '-c', src, '-o', obj]);
  if (cc.exitCode !== 0) throw new Error(`clang ${src}: ${cc.stderr.trim() || 'failed'} (install clang: make deps)`);
  const pinDir = join(sb.bpffsPath, 'foreign');
  mkdirSync(pinDir, { recursive: true });
  const pin = join(pinDir, 'foreign_conn4');
  const load = await runCommand(['bpftool', 'prog', 'load', obj, pin, 'type', 'cgroup/connect4']);
  if (load.exitCode !== 0) throw new Error(`bpftool prog load: ${load.stderr.trim()}`);
  const attach = await runCommand(['bpftool', 'cgroup', 'attach', sb.cgroupPath, 'connect4', 'pinned', pin, 'multi']);
  if (attach.exitCode !== 0) throw new Error(`bpftool cgroup attach: ${attach.stderr.trim()}`);
  rmSync(pinDir, { recursive: true });
}

export interface EbpfState {
  cgroupPrograms: string;
  tcFilters: string;
  qdiscs: string;
  pins: string[];
}

/** Programs on the sandbox cgroup, tc filters and qdiscs on the mesh veth, pins in the sandbox bpffs. */
export async function ebpfState(sb: Sandbox): Promise<EbpfState> {
  const cg = await cgroupOwnPrograms(sb.cgroupPath);
  const tc = await runIn(sb, 'mesh', ['tc', 'filter', 'show', 'dev', sb.iface.mesh, 'ingress']);
  const qd = await runIn(sb, 'mesh', ['tc', 'qdisc', 'show', 'dev', sb.iface.mesh]);
  return {
    cgroupPrograms: cg.map((p) => `${p.id} ${p.attach_type} ${p.name}`).join('\n'),
    tcFilters: tc.exitCode === 0 ? tc.stdout.trim() : `(tc: ${tc.stderr.trim()})`,
    qdiscs: qd.stdout.trim(),
    // maps.debug / progs.debug are the kernel's bpf_preload iterators, present in every fresh bpffs.
    pins: listTree(sb.bpffsPath).filter((p) => !BPF_PRELOAD_ENTRIES.has(p)),
  };
}

/**
 * `nft list ruleset` of the mesh host, byte for byte (the nftables engine's promise for
 * uninstall), or with `stateless` without counter values (which traffic changes).
 */
export async function nftRuleset(sb: Sandbox, opts: { stateless?: boolean } = {}): Promise<string> {
  const r = await runIn(sb, 'mesh', ['nft', ...(opts.stateless ? ['--stateless'] : []), 'list', 'ruleset']);
  if (r.exitCode !== 0) throw new Error(`nft list ruleset: ${r.stderr.trim()}`);
  return r.stdout;
}

/**
 * Tables somebody else owns, as nft shows them: iptables-nft's (foreign rules in
 * every table), a firewalld-like `inet firewalld` table, and a table with nat chains
 * at other priorities than tpctl's. No counters, so traffic cannot change them.
 */
export async function addForeignNftTables(sb: Sandbox): Promise<void> {
  await addForeignIptablesRules(sb, 'nft');
  const script = [
    'table inet firewalld {',
    '\tchain filter_INPUT { type filter hook input priority filter + 10; policy accept; ct state established,related accept; iifname "lo" accept; }',
    '\tchain nat_PREROUTING { type nat hook prerouting priority dstnat + 10; policy accept; }',
    '\tchain nat_OUTPUT { type nat hook output priority -90; policy accept; }',
    '\tchain mangle_PREROUTING { type filter hook prerouting priority mangle + 10; policy accept; }',
    '}',
    'table ip foreign_nat {',
    '\tset blocked { type ipv4_addr; flags interval; elements = { 192.0.2.0/28 } }',
    '\tchain early { type nat hook output priority -150; policy accept; ip daddr 192.0.2.9 tcp dport 7 dnat to 192.0.2.10; }',
    '\tchain late { type nat hook output priority 50; policy accept; ip daddr @blocked tcp dport 9 redirect to :9; }',
    '\tchain post { type nat hook postrouting priority srcnat; policy accept; oifname "foreign0" masquerade; }',
    '}',
    '',
  ].join('\n');
  const r = await runIn(sb, 'mesh', ['nft', '-f', '-'], { input: script });
  if (r.exitCode !== 0) throw new Error(`nft -f (foreign tables): ${r.stderr.trim()}`);
}

export async function engineState(engine: EngineName, sb: Sandbox): Promise<string> {
  // The eBPF engine must not touch iptables either.
  if (engine === 'ebpf') return `${JSON.stringify(await ebpfState(sb), null, 1)}\n${await iptablesState(sb)}`;
  // nftables: the whole ruleset (iptables-nft's tables are in it) minus counter values, and legacy iptables.
  if (engine === 'nftables') return `${await nftRuleset(sb, { stateless: true })}\n${await iptablesState(sb)}`;
  return iptablesState(sb);
}

/** The mesh interface's link-local IPv6 address, once duplicate address detection is done (bounded wait). */
export async function meshLinkLocal(sb: Sandbox): Promise<string> {
  for (let i = 0; i < 100; i++) {
    const r = await runIn(sb, 'mesh', ['ip', '-j', '-6', 'addr', 'show', 'dev', sb.iface.mesh, 'scope', 'link']);
    if (r.exitCode !== 0) throw new Error(`ip addr show dev ${sb.iface.mesh}: ${r.stderr.trim()}`);
    const infos = (JSON.parse(r.stdout) as Array<{ addr_info: Array<{ local: string; tentative?: boolean }> }>)[0]?.addr_info ?? [];
    const ready = infos.find((a) => !a.tentative && a.local);
    if (ready) return ready.local;
    await new Promise((res) => setTimeout(res, 100));
  }
  throw new Error(`no usable link-local address on ${sb.iface.mesh} after 10 s`);
}
