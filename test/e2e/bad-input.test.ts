/**
 * The validation suite run for real: every bad input is given to the real CLI as
 * root inside a sandbox, without --dry-run (so a value that slipped through would
 * install), and must give exit 2, one short line naming the input, and a host
 * exactly as before (iptables of both backends, cgroup programs, tc, pins).
 *
 * Plus the one input that is not refused but rewritten: IPv4-mapped IPv6 addresses
 * (`::ffff:10.0.0.1`) in address settings mean the IPv4 address, in every engine —
 * shown with real traffic from and to such an address.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  APP_PORTS, APP_UID, CLIENT_HOSTS, PROXY_UID, REMOTE_PORTS,
  addForeignIptablesRules, addForeignNftTables, conformanceFlags, describeCli, engineFlags, engineState, probeTcp, runCli, uninstallFlags, type EngineName,
} from '../../src/sandbox/harness.js';
import type { Sandbox } from '../../src/sandbox/types.js';
import { useSandbox } from './suite.js';
import { hostPort, ipOf } from '../../src/sandbox/wire.js';

const ENGINES: EngineName[] = ['iptables-nft', 'iptables-legacy', 'nftables', 'ebpf'];
const USER = ['--kuma-dp-user', String(PROXY_UID)];

describe('bad input on the real CLI (root, no --dry-run)', () => {
  const box = useSandbox(`tpe2e-i7input-${process.pid}`);
  const sb = (): Sandbox => box.sb;

  const file = (name: string, content: string | Buffer): string => {
    const path = join(sb().tmpDir, name);
    writeFileSync(path, content);
    return path;
  };

  // [name, args, the one line (a regex), stdin]
  const cases: Array<[string, () => string[], RegExp, string?]> = [
    ['an empty port between commas', () => ['install', 'transparent-proxy', ...USER, '--exclude-inbound-ports', '80,,443'],
      /^error: --exclude-inbound-ports: "80,,443" has an empty item between commas \(expected .+\)$/],
    ['a trailing comma in a port list', () => ['install', 'transparent-proxy', ...USER, '--exclude-outbound-ports', '80,'],
      /^error: --exclude-outbound-ports: "80," has an empty item between commas \(expected .+\)$/],
    ['a port list in a config file with an empty item', () => ['install', 'transparent-proxy', ...USER, '--config', file('ports.yaml', 'redirect:\n  inbound:\n    excludePorts: "22,,80"\n')],
      /^error: \S+ports\.yaml: redirect\.inbound\.excludePorts: "22,,80" has an empty item between commas \(expected .+\)$/],
    ['an IPv4-mapped CIDR wider than the mapped block', () => ['install', 'transparent-proxy', ...USER, '--exclude-inbound-ips', '::ffff:10.0.0.0/95'],
      /^error: --exclude-inbound-ips: "::ffff:10\.0\.0\.0\/95" is an IPv4-mapped address with a prefix shorter than \/96 \(.+\)$/],
    ['a 4 KiB binary config file', () => ['install', 'transparent-proxy', ...USER, '--config', file('binary.cfg', Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) % 256)))],
      /^error: \S+binary\.cfg: .{1,200}$/],
    ['a config file over the size limit', () => ['install', 'transparent-proxy', ...USER, '--config', file('huge.yaml', `# ${'x'.repeat(17 * 1024 * 1024)}\n`)],
      /^error: --config: \S+huge\.yaml is larger than 16 MiB, the limit for config files \(.+\)$/],
    ['a long bad flag value', () => ['install', 'transparent-proxy', ...USER, '--exclude-inbound-ports', 'x'.repeat(100_000)],
      /^error: --exclude-inbound-ports: "x{40}"… \(100000 characters\) is not a port or range \(expected .+\)$/],
    ['a duplicate key in a JSON config', () => ['install', 'transparent-proxy', ...USER, '--config', '-'],
      /^error: <stdin>: redirect\.inbound\.port: key given twice \(keep one of them\)$/, '{"redirect": {"inbound": {"port": 15006, "port": 15007}}}'],
    ['an unknown command', () => ['frobnicate', 'transparent-proxy'], /^error: unknown command 'frobnicate' \(expected install, uninstall, status or verify\)$/],
    ['a misspelt command', () => ['instal', 'transparent-proxy', ...USER], /^error: unknown command 'instal' \(did you mean install\?\)$/],
    ['transparent-proxy missing', () => ['install', '--kuma-dp-user=5678'], /^error: install: missing what to install \(expected: tpctl install transparent-proxy \[flags\]\)$/],
    ['transparent-proxy misspelt', () => ['uninstall', 'transparent-proxyy'], /^error: uninstall: unknown target 'transparent-proxyy' \(did you mean transparent-proxy\?\)$/],
    ['--kuma-dp-user and --kuma-dp-uid naming two users', () => ['install', 'transparent-proxy', '--kuma-dp-user', '5678', '--kuma-dp-uid', '5679'],
      /^error: --kuma-dp-uid: uid 5679 is not the user --kuma-dp-user names \(uid 5678\) \(.+\)$/],
  ];

  for (const [name, args, line, input] of cases) {
    it(`${name}: exit 2, one line naming it, host untouched`, async () => {
      const before = await engineState('ebpf', sb());
      const r = await runCli(sb(), args(), {}, input);
      expect(r.exitCode, describeCli(r)).toBe(2);
      expect(r.stdout).toBe('');
      const lines = r.stderr.split('\n').filter(Boolean);
      expect(lines, r.stderr.slice(0, 500)).toHaveLength(1);
      expect(lines[0]!.length, 'a short line').toBeLessThanOrEqual(300);
      expect(lines[0]).toMatch(line);
      expect(await engineState('ebpf', sb())).toBe(before);
    });
  }

  for (const engine of ENGINES) {
    it(`${engine}: IPv4-mapped addresses in the exclusion settings act as the IPv4 addresses`, async () => {
      const s = sb();
      // The conformance settings with their address exclusions replaced by IPv4-mapped spellings.
      const flags = conformanceFlags(s);
      for (const flag of ['--exclude-outbound-ips', '--exclude-inbound-ips']) {
        const i = flags.indexOf(flag);
        flags.splice(i, 2);
      }
      flags.push('--exclude-outbound-ips', `::ffff:${s.v4(CLIENT_HOSTS.excludedOutboundIp)}/128`);
      flags.push('--exclude-inbound-ips', `::ffff:${s.v4(CLIENT_HOSTS.excludedInboundSource)}`);
      // Legacy tables cannot be unregistered: with a table of someone else's in place, uninstall restores the host exactly.
      if (engine === 'nftables') await addForeignNftTables(s);
      else if (engine !== 'ebpf') await addForeignIptablesRules(s, engine === 'iptables-nft' ? 'nft' : 'legacy');
      const before = await engineState(engine, s);
      const r = await runCli(s, ['install', 'transparent-proxy', ...flags, ...engineFlags(engine, s)]);
      expect(r.exitCode, describeCli(r)).toBe(0);
      try {
        const app = { host: 'mesh' as const, uid: APP_UID };
        const excludedDst = s.v4(CLIENT_HOSTS.excludedOutboundIp);
        const out = await probeTcp(s, app, excludedDst, REMOTE_PORTS.plain);
        expect(out.reply, 'app → the excluded (mapped) destination goes direct').toMatchObject({ via: 'remote', local: hostPort(excludedDst, REMOTE_PORTS.plain) });
        const source = s.v4(CLIENT_HOSTS.excludedInboundSource);
        const inb = await probeTcp(s, { host: 'client' }, s.ipv4.mesh, APP_PORTS.plain, source);
        expect(inb.reply, 'the excluded (mapped) source reaches the app directly').toMatchObject({ via: 'app' });
        expect(ipOf(inb.reply.peer ?? '')).toBe(source);
        const remote = s.v4(CLIENT_HOSTS.remote);
        const other = await probeTcp(s, app, remote, REMOTE_PORTS.plain);
        expect(other.reply, 'everything else is still redirected').toMatchObject({ via: 'proxy', origDst: hostPort(remote, REMOTE_PORTS.plain) });
      } finally {
        const u = await runCli(s, ['uninstall', 'transparent-proxy', ...uninstallFlags(engine, s)]);
        expect(u.exitCode, describeCli(u)).toBe(0);
      }
      expect(await engineState(engine, s)).toBe(before);
    });
  }
});
