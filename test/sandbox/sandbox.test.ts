/**
 * Self-test of the sandbox and its cast, with no tpctl engine involved: traffic
 * flows where it should, the test proxy recovers SO_ORIGINAL_DST from a hand-made
 * REDIRECT rule (inside the sandbox netns only), and destroy() leaves nothing behind.
 */
import { existsSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseSockaddr } from '../../src/host/libc.js';
import {
  APP_PORTS, APP_UID, CLIENT_HOSTS, EXTRA_CLIENT_HOSTS, PORTS, PROXY_UID, REMOTE_PORTS,
  probeTcp, probeUdp, startCast,
} from '../../src/sandbox/harness.js';
import { createSandbox } from '../../src/sandbox/sandbox.js';
import { runIn } from '../../src/sandbox/commands.js';
import type { Sandbox } from '../../src/sandbox/types.js';
import { hostPort, ipOf } from '../../src/sandbox/wire.js';

describe('parseSockaddr', () => {
  it('decodes sockaddr_in', () => {
    const b = Buffer.alloc(16);
    b.writeUInt16LE(2, 0);
    b.writeUInt16BE(8080, 2);
    Buffer.from([10, 231, 1, 1]).copy(b, 4);
    expect(parseSockaddr(b)).toEqual({ address: '10.231.1.1', port: 8080 });
  });
  it('decodes sockaddr_in6 with RFC 5952 compression', () => {
    const b = Buffer.alloc(28);
    b.writeUInt16LE(10, 0);
    b.writeUInt16BE(53, 2);
    const groups = [0xfd00, 0x231, 1, 0, 0, 0, 0, 1];
    groups.forEach((g, i) => b.writeUInt16BE(g, 8 + i * 2));
    expect(parseSockaddr(b)).toEqual({ address: 'fd00:231:1::1', port: 53 });
  });
});

describe('wire helpers', () => {
  it('formats and splits endpoints', () => {
    expect(hostPort('::1', 53)).toBe('[::1]:53');
    expect(ipOf('[fd00::2]:80')).toBe('fd00::2');
    expect(ipOf('10.0.0.1:80')).toBe('10.0.0.1');
  });
});

describe('sandbox (no engine)', () => {
  let sb: Sandbox | undefined;
  const app = { host: 'mesh' as const, uid: APP_UID };

  beforeAll(async () => {
    sb = await createSandbox({ name: `tpe2e-self-${process.pid}`, extraClientHosts: EXTRA_CLIENT_HOSTS });
    await startCast(sb);
  });
  afterAll(async () => {
    await sb?.destroy();
  });

  it('joins mesh processes to the child cgroup, never the root', () => {
    const procs = readFileSync(`${sb!.cgroupPath}/cgroup.procs`, 'utf8').trim().split('\n');
    expect(procs.length).toBeGreaterThanOrEqual(2);
  });

  for (const family of [4, 6] as const) {
    const v = (h: number): string => (family === 4 ? sb!.v4(h) : sb!.v6(h));
    const mesh = (): string => (family === 4 ? sb!.ipv4.mesh : sb!.ipv6.mesh);

    it(`IPv${family}: app reaches the remote server directly`, async () => {
      const r = await probeTcp(sb!, app, v(CLIENT_HOSTS.remote), REMOTE_PORTS.plain);
      expect(r.reply.via).toBe('remote');
      expect(ipOf(r.reply.peer!)).toBe(mesh());
    });

    it(`IPv${family}: client reaches the app directly, from its main address unless told otherwise`, async () => {
      const r = await probeTcp(sb!, { host: 'client' }, mesh(), APP_PORTS.plain);
      expect(r.reply).toMatchObject({ via: 'app', local: hostPort(mesh(), APP_PORTS.plain) });
      expect(ipOf(r.reply.peer!)).toBe(v(CLIENT_HOSTS.remote));
      const other = v(CLIENT_HOSTS.excludedInboundSource);
      const bound = await probeTcp(sb!, { host: 'client' }, mesh(), APP_PORTS.plain, other);
      expect(ipOf(bound.reply.peer!)).toBe(other);
    });

    it(`IPv${family}: DNS to the client host answers from the address asked`, async () => {
      for (const connected of [true, false]) {
        const r = await probeUdp(sb!, app, v(CLIENT_HOSTS.unlistedDns), 53, connected);
        expect(r.reply.via).toBe('remote-dns');
        expect(r.from).toBe(hostPort(v(CLIENT_HOSTS.unlistedDns), 53));
      }
    });

    it(`IPv${family}: the proxy recovers SO_ORIGINAL_DST behind a hand-made REDIRECT`, async () => {
      const tool = family === 4 ? 'iptables-nft' : 'ip6tables-nft';
      const rule = ['-t', 'nat', '-p', 'tcp', '-d', v(CLIENT_HOSTS.remote), '--dport', String(REMOTE_PORTS.laterExcluded),
        '-m', 'owner', '!', '--uid-owner', String(PROXY_UID), '-j', 'REDIRECT', '--to-ports', String(PORTS.outbound)];
      const add = await runIn(sb!, 'mesh', [tool, '-A', 'OUTPUT', ...rule]);
      expect(add.stderr).toBe('');
      try {
        const r = await probeTcp(sb!, app, v(CLIENT_HOSTS.remote), REMOTE_PORTS.laterExcluded);
        expect(r.reply).toMatchObject({
          via: 'proxy',
          listener: 'outbound',
          origDst: hostPort(v(CLIENT_HOSTS.remote), REMOTE_PORTS.laterExcluded),
          origDstFrom: 'getsockopt',
        });
        expect(ipOf(r.reply.peer!)).toBe(mesh());
      } finally {
        await runIn(sb!, 'mesh', [tool, '-D', 'OUTPUT', ...rule]);
      }
    });
  }

  it('the proxy reports a direct (not redirected) connection with the getsockopt errno', async () => {
    const r = await probeTcp(sb!, app, '127.0.0.1', PORTS.outbound);
    expect(r.reply).toMatchObject({ via: 'proxy', listener: 'outbound', origDst: null });
    expect(r.reply.getsockoptError).toMatch(/ENOENT/);
  });

  it('destroy removes netns, cgroup and bpffs, and is safe twice', async () => {
    const s = sb!;
    sb = undefined;
    await s.destroy();
    await s.destroy();
    expect(existsSync(`/run/netns/${s.netns.mesh}`)).toBe(false);
    expect(existsSync(`/run/netns/${s.netns.client}`)).toBe(false);
    expect(existsSync(s.cgroupPath)).toBe(false);
    expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(s.bpffsPath);
    expect(existsSync(s.tmpDir)).toBe(false);
  });
});
