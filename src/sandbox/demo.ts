/**
 * `make demo`: shows tpctl working, end to end, without touching this machine's own
 * network. Builds a sandbox (two network namespaces, a child cgroup, a private
 * bpffs), starts a test proxy, an app and a remote server, installs tpctl with the
 * chosen engine through the real CLI inside the sandbox, sends traffic and prints
 * what the proxy saw; then uninstalls and removes the sandbox.
 *
 *   node dist/sandbox/demo.js [--engine ebpf|iptables|nftables]
 */
import { parseArgs } from 'node:util';
import {
  APP_PORTS, APP_UID, CLIENT_HOSTS, EXTRA_CLIENT_HOSTS, PORTS, PROXY_UID, REMOTE_PORTS,
  conformanceFlags, describeCli, engineFlags, probeTcp, probeUdp, runCli, startCast, uninstallFlags,
  type EngineName, type Greeting,
} from './harness.js';
import { createSandbox } from './sandbox.js';
import { describeSweep, sweepStaleSandboxes } from './leftovers.js';
import type { Sandbox } from './types.js';
import { hostPort } from './wire.js';

interface ProbeLine {
  label: string;
  what: string;
  run: () => Promise<{ reply: Greeting; extra?: string }>;
  expect: (reply: Greeting) => boolean;
}

function describeReply(reply: Greeting, extra = ''): string {
  const tail = extra ? ` ${extra}` : '';
  switch (reply.via) {
    case 'proxy': {
      const port = reply.listener === 'outbound' ? PORTS.outbound : PORTS.inbound;
      const how = reply.origDstFrom === 'getsockopt' ? ' (SO_ORIGINAL_DST)' : reply.origDstFrom === 'local' ? ' (local address)' : '';
      return `proxy:${port} saw orig_dst=${reply.origDst ?? '?'}${how} peer=${reply.peer ?? '?'}${tail}`;
    }
    case 'proxy-dns':
      return `proxy-dns:${PORTS.dns} answered peer=${reply.peer ?? '?'}${tail}`;
    default:
      return `${reply.via} answered directly on ${reply.local ?? '?'} (peer ${reply.peer ?? '?'})${tail}`;
  }
}

function probes(sb: Sandbox): ProbeLine[] {
  const app = { host: 'mesh' as const, uid: APP_UID };
  const remote4 = sb.ipv4.client;
  const remote6 = sb.ipv6.client;
  const tcp = (from: typeof app | { host: 'client' }, host: string, port: number) => async () => {
    const r = await probeTcp(sb, from, host, port);
    return { reply: r.reply, extra: from.host === 'mesh' && r.reply.via === 'proxy' ? `app_getpeername=${r.peername}` : '' };
  };
  const dns = (host: string, connected: boolean) => async () => {
    const r = await probeUdp(sb, app, host, 53, connected);
    return { reply: r.reply, extra: `reply_from=${r.from}` };
  };
  const viaProxy = (listener: string) => (g: Greeting) => g.via === 'proxy' && g.listener === listener && Boolean(g.origDst);
  return [
    { label: 'outbound', what: `app → ${hostPort(remote4, REMOTE_PORTS.plain)}`, run: tcp(app, remote4, REMOTE_PORTS.plain), expect: viaProxy('outbound') },
    { label: 'outbound', what: `app → ${hostPort(remote6, REMOTE_PORTS.plain)}`, run: tcp(app, remote6, REMOTE_PORTS.plain), expect: viaProxy('outbound') },
    { label: 'inbound', what: `client → ${hostPort(sb.ipv4.mesh, APP_PORTS.plain)}`, run: tcp({ host: 'client' }, sb.ipv4.mesh, APP_PORTS.plain), expect: viaProxy('inbound') },
    { label: 'inbound', what: `client → ${hostPort(sb.ipv6.mesh, APP_PORTS.plain)}`, run: tcp({ host: 'client' }, sb.ipv6.mesh, APP_PORTS.plain), expect: viaProxy('inbound') },
    { label: 'excluded', what: `app → ${hostPort(remote4, REMOTE_PORTS.excluded)}`, run: tcp(app, remote4, REMOTE_PORTS.excluded), expect: (g) => g.via === 'remote' },
    { label: 'bypass', what: `proxy uid → ${hostPort(remote4, REMOTE_PORTS.plain)}`, run: async () => ({ reply: (await probeTcp(sb, { host: 'mesh', uid: PROXY_UID }, remote4, REMOTE_PORTS.plain)).reply }), expect: (g) => g.via === 'remote' },
    { label: 'dns', what: `app → ${hostPort(remote4, 53)} udp`, run: dns(remote4, true), expect: (g) => g.via === 'proxy-dns' },
    { label: 'dns', what: `app → ${hostPort(remote6, 53)} udp`, run: dns(remote6, false), expect: (g) => g.via === 'proxy-dns' },
    { label: 'dns', what: `app → ${hostPort(sb.v4(CLIENT_HOSTS.unlistedDns), 53)} udp (not in resolv.conf)`, run: dns(sb.v4(CLIENT_HOSTS.unlistedDns), true), expect: (g) => g.via === 'remote-dns' },
  ];
}

type DemoEngine = 'ebpf' | 'iptables' | 'nftables';

async function runDemo(engineChoice: DemoEngine): Promise<boolean> {
  const engine: EngineName = engineChoice === 'iptables' ? 'iptables-nft' : engineChoice;
  let sb: Sandbox | undefined;
  let installed = false;
  let interrupted = false;
  const stop = (): void => {
    interrupted = true;
    // A second Ctrl-C while tearing down would leave leftovers; finish the finally block instead.
    process.stderr.write('demo: interrupted, cleaning up\n');
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  try {
    for (const line of describeSweep(await sweepStaleSandboxes())) console.log(`demo: ${line}`);
    sb = await createSandbox({ name: `tpdemo-${process.pid}`, extraClientHosts: EXTRA_CLIENT_HOSTS });
    console.log(`sandbox: client host ${sb.ipv4.client} ${sb.ipv6.client}  ⇄  mesh host ${sb.ipv4.mesh} ${sb.ipv6.mesh} (netns ${sb.netns.client}, ${sb.netns.mesh})`);
    await startCast(sb);
    console.log(`started: proxy (uid ${PROXY_UID}) on :${PORTS.outbound}/:${PORTS.inbound}/dns :${PORTS.dns}, app (uid ${APP_UID}) on :${APP_PORTS.plain}, remote server on the client host`);

    const flags = [...conformanceFlags(sb), ...(engine === 'iptables-nft' ? [] : engineFlags(engine, sb))];
    console.log(`\n$ tpctl install transparent-proxy ${flags.join(' ')}`);
    const r = await runCli(sb, ['install', 'transparent-proxy', ...flags]);
    if (r.exitCode !== 0) {
      console.log(`install failed: ${(r.stderr.trim() || describeCli(r)).split('\n')[0]}`);
      return false;
    }
    installed = true;
    for (const line of r.stdout.trim().split('\n').filter(Boolean).slice(0, 12)) console.log(`  ${line}`);

    console.log('');
    let ok = true;
    for (const p of probes(sb)) {
      if (interrupted) return false;
      let text: string;
      let pass: boolean;
      try {
        const { reply, extra } = await p.run();
        pass = p.expect(reply);
        text = describeReply(reply, extra);
      } catch (e) {
        pass = false;
        text = (e as Error).message;
      }
      ok &&= pass;
      console.log(`${p.label.padEnd(9)} ${p.what.padEnd(47)} ${text}   ${pass ? '✓' : '✗'}`);
    }
    return ok;
  } finally {
    if (sb && installed) {
      const u = await runCli(sb, ['uninstall', 'transparent-proxy', ...(engine === 'iptables-nft' ? [] : uninstallFlags(engine, sb))]);
      console.log(`\n$ tpctl uninstall transparent-proxy → ${u.exitCode === 0 ? 'removed' : `failed: ${u.stderr.trim()}`}`);
    }
    if (sb) {
      await sb.destroy().catch((e: unknown) => console.error(`demo: ${(e as Error).message}`));
      console.log('sandbox removed');
    }
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}

async function main(): Promise<number> {
  let engine: string;
  try {
    const { values } = parseArgs({ options: { engine: { type: 'string', default: 'ebpf' } }, strict: true });
    engine = values.engine ?? 'ebpf';
  } catch (e) {
    console.error(`demo: ${(e as Error).message} (usage: demo [--engine ebpf|iptables|nftables])`);
    return 2;
  }
  if (engine !== 'ebpf' && engine !== 'iptables' && engine !== 'nftables') {
    console.error(`demo: unknown engine ${JSON.stringify(engine)} (use --engine ebpf, iptables or nftables)`);
    return 2;
  }
  if (process.getuid?.() !== 0) {
    console.error('demo: needs root to build network namespaces, a cgroup and a bpffs mount (run: sudo make demo)');
    return 1;
  }
  console.log(`tpctl demo — engine: ${engine}\n`);
  const ok = await runDemo(engine);
  console.log(ok ? '\nall probes behaved as expected' : '\nsome probes did not behave as expected');
  return ok ? 0 : 1;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    console.error(`demo: ${(e as Error).message}`);
    process.exitCode = 1;
  },
);
