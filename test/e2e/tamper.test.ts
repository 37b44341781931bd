/**
 * An ordinary local user against the eBPF install's pins (issue 7's attack): with
 * the bpffs tpctl mounts itself, the user tries each step — create an entry in the
 * pin directory, create or replace `links/`, delete a link pin (which would detach its
 * program) — and every step fails; the proxy keeps getting the app's traffic. Then
 * the states such an attack (or a careless admin) could have left before an install:
 * install refuses each with one line saying why and how to fix it, and changes nothing.
 */
import { chmodSync, chownSync, mkdirSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  APP_UID, EXTRA_CLIENT_HOSTS, REMOTE_PORTS,
  conformanceFlags, describeCli, engineFlags, engineState, probeTcp, runCli, startCast,
} from '../../src/sandbox/harness.js';
import { createSandbox } from '../../src/sandbox/sandbox.js';
import { listTree } from '../../src/sandbox/fs.js';
import { runCommand } from '../../src/sandbox/commands.js';
import type { Sandbox } from '../../src/sandbox/types.js';
import { hostPort } from '../../src/sandbox/wire.js';

const NOBODY = 65534;
const app = { host: 'mesh' as const, uid: APP_UID };

/** Runs a command as uid/gid nobody, no supplementary groups, no capabilities. */
function asNobody(argv: string[]) {
  return runCommand(['setpriv', `--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', '--inh-caps=-all', '--', ...argv]);
}

const mode = (path: string): string => (statSync(path).mode & 0o7777).toString(8).padStart(4, '0');

describe('tamper-proofing: an ordinary user cannot touch the eBPF pins', () => {
  const ctx: { sb?: Sandbox } = {};
  const sb = (): Sandbox => {
    if (!ctx.sb) throw new Error('sandbox not created (see beforeAll error)');
    return ctx.sb;
  };
  // A world-traversable parent, like /run: only tpctl's own modes keep the user out.
  const parent = (): string => join(sb().tmpDir, 'i7open');
  const bpffsPath = (): string => join(parent(), 'tpctl', 'bpf');
  const install = (path = bpffsPath()) =>
    runCli(sb(), ['install', 'transparent-proxy', ...conformanceFlags(sb()), ...engineFlags('ebpf', sb()), '--ebpf-bpffs-path', path]);
  const uninstall = (path = bpffsPath()) => runCli(sb(), ['uninstall', 'transparent-proxy', '--ebpf-enabled', '--ebpf-bpffs-path', path]);

  beforeAll(async () => {
    ctx.sb = await createSandbox({ name: `tpe2e-i7tamper-${process.pid}`, extraClientHosts: EXTRA_CLIENT_HOSTS });
    chmodSync(ctx.sb.tmpDir, 0o755);
    mkdirSync(join(ctx.sb.tmpDir, 'i7open'), { mode: 0o755 });
    await startCast(ctx.sb);
  }, 120_000);

  afterAll(async () => {
    if (!ctx.sb) return;
    try {
      await uninstall();
    } finally {
      await ctx.sb.destroy();
    }
  });

  it('tpctl mounts its bpffs mode 0700 and creates every directory 0700', async () => {
    const r = await install();
    expect(r.exitCode, describeCli(r)).toBe(0);
    // bpffs always sets the sticky bit on its root; mode=0700 gives drwx-----T.
    expect(mode(bpffsPath()), 'the bpffs mount').toBe('1700');
    expect(mode(join(parent(), 'tpctl')), 'a directory tpctl created').toBe('0700');
    expect(mode(join(bpffsPath(), 'links'))).toBe('0700');
  });

  it('every step of the attack fails for an ordinary user, and the proxy still gets the traffic', async () => {
    const links = join(bpffsPath(), 'links');
    const attempts: Array<[string, string[]]> = [
      ['list the pin directory', ['ls', bpffsPath()]],
      ['create a directory in the bpffs', ['mkdir', join(bpffsPath(), 'evil')]],
      ['create links/ again', ['mkdir', links]],
      ['replace links/', ['mv', links, join(bpffsPath(), 'old')]],
      ['delete a link pin (detaching tp_connect4)', ['rm', '-f', join(links, 'tp_connect4')]],
      ['delete the settings map', ['rm', '-f', join(bpffsPath(), 'tp_cfg_v1')]],
      ['delete the install record', ['rm', '-f', join(bpffsPath(), 'tp_state_v1')]],
      // mkdir -p: refused whether /run/tpctl exists (root-only) or not (then /run refuses it)
      ['plant something in tpctl\'s state directory', ['mkdir', '-p', '/run/tpctl/i7-evil']],
    ];
    for (const [what, argv] of attempts) {
      const r = await asNobody(argv);
      expect(r.exitCode, `${what} must fail: ${r.stdout} ${r.stderr}`).not.toBe(0);
      // one line, and the reason is the permission, not a path that is not there
      expect(r.stderr, what).toMatch(/^[a-z]+: cannot [^\n]+: Permission denied\n$/);
    }
    expect(listTree(bpffsPath()).filter((p) => !p.endsWith('.debug'))).toContain('links/tp_connect4');
    const remote = sb().ipv4.client;
    const r = await probeTcp(sb(), app, remote, REMOTE_PORTS.plain);
    expect(r.reply).toMatchObject({ via: 'proxy', listener: 'outbound', origDst: hostPort(remote, REMOTE_PORTS.plain) });
    const un = await uninstall();
    expect(un.exitCode, describeCli(un)).toBe(0);
  });

  describe('install refuses a pin directory it cannot trust, with one line, and changes nothing', () => {
    // A bpffs path on the sandbox's own bpffs (mounted 0700 by root).
    const planted = (): string => join(sb().bpffsPath, 'tp');
    const cases: Array<{ name: string; plant: (dir: string) => void | Promise<void>; line: RegExp; path?: (dir: string) => string }> = [
      {
        name: 'links/ owned by another user',
        plant: (dir) => {
          mkdirSync(join(dir, 'links'), { mode: 0o700 });
          chownSync(join(dir, 'links'), NOBODY, NOBODY);
        },
        line: /^error: --ebpf-bpffs-path \S+\/tp: \S+\/tp\/links is owned by uid 65534, not root \(tpctl builds only on pins root made: .+\)$/,
      },
      {
        name: 'links/ as a symbolic link',
        plant: (dir) => {
          mkdirSync(join(dir, 'elsewhere'));
          symlinkSync(join(dir, 'elsewhere'), join(dir, 'links'));
        },
        line: /^error: --ebpf-bpffs-path \S+\/tp: \S+\/tp\/links is a symbolic link \(.+\)$/,
      },
      {
        name: 'an entry tpctl did not create',
        plant: (dir) => mkdirSync(join(dir, 'evil')),
        line: /^error: --ebpf-bpffs-path \S+\/tp: holds evil, which tpctl did not create \(the pin directory is tpctl's alone: .+\)$/,
      },
      {
        name: 'a group/other-writable pin directory (an old tpctl mount, drwxrwxrwt)',
        plant: (dir) => chmodSync(dir, 0o1777),
        line: /^error: --ebpf-bpffs-path \S+\/tp: \S+\/tp is writable by group or others \(mode 1777\) \(chmod go-w \S+\/tp .+\)$/,
      },
      {
        name: 'a pin directory owned by another user',
        plant: (dir) => chownSync(dir, NOBODY, NOBODY),
        line: /^error: --ebpf-bpffs-path \S+\/tp: \S+\/tp is owned by uid 65534, not root \(only root may own it: chown root:root .+\)$/,
      },
      {
        name: 'a symbolic link on the way to the pin directory',
        plant: (dir) => symlinkSync(dir, `${dir}-link`),
        path: (dir) => join(`${dir}-link`, 'x'),
        line: /^error: --ebpf-bpffs-path \S+\/tp-link\/x: \S+\/tp-link is a symbolic link \(tpctl does not follow symbolic links there: pass the real path\)$/,
      },
    ];
    for (const c of cases) {
      it(c.name, async () => {
        const dir = planted();
        mkdirSync(dir, { mode: 0o700 });
        try {
          await c.plant(dir);
          const before = await engineState('ebpf', sb());
          const tree = listTree(sb().bpffsPath).join(' ');
          const r = await install(c.path ? c.path(dir) : dir);
          expect(r.exitCode, describeCli(r)).toBe(3);
          const lines = r.stderr.split('\n').filter(Boolean);
          expect(lines, r.stderr).toHaveLength(1);
          expect(lines[0]).toMatch(c.line);
          expect(await engineState('ebpf', sb()), 'nothing attached, pinned or changed').toBe(before);
          expect(listTree(sb().bpffsPath).join(' ')).toBe(tree);
        } finally {
          rmSync(`${dir}-link`, { force: true });
          rmSync(dir, { recursive: true, force: true });
        }
      });
    }
  });
});
