/**
 * --persist end to end, for every engine, in a sandbox and under a temporary root
 * (TPCTL_ROOT; `systemctl --root` enables the unit there, never on this machine):
 * the unit's ExecStop and ExecStart commands, run as written inside the sandbox,
 * take redirection away and bring it back (checked with real connections), and a
 * plain uninstall disables and removes unit and settings. iptables engines also
 * check that --store-firewalld's entries leave direct.xml byte-identical.
 */
import { existsSync, lstatSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, type TestContext } from 'vitest';
import { APP_UID, CLIENT_HOSTS, conformanceFlags, engineFlags, isKernelTooOld, probeTcp, REMOTE_PORTS } from '../../src/sandbox/harness.js';
import { runIn } from '../../src/sandbox/commands.js';
import type { Sandbox } from '../../src/sandbox/types.js';
import { tokenize } from '../../src/iptables/canonical.js';
import { cli, describeCli, OPERATE_ENGINES, statusFlags, useInstalled } from './operate.js';

const app = { host: 'mesh' as const, uid: APP_UID };
const UNIT = 'etc/systemd/system/tpctl-transparent-proxy.service';
const FOREIGN_DIRECT = '<?xml version="1.0" encoding="utf-8"?>\n<direct>\n  <rule ipv="ipv4" table="filter" chain="INPUT" priority="0">-s 192.0.2.7 -j ACCEPT</rule>\n</direct>\n';

/** The enable symlink points into the (temporary) root, so it dangles from here: lstat, not exists. */
function linkExists(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}

async function via(sb: Sandbox): Promise<string> {
  const r = await probeTcp(sb, app, sb.v4(CLIENT_HOSTS.remote), REMOTE_PORTS.plain);
  return r.reply.via;
}

for (const e of OPERATE_ENGINES) {
  describe(`--persist: ${e.engine}`, () => {
    const s = useInstalled(e, { name: `tpe2e-${e.tag}p-${process.pid}`, install: false });
    const root = (): string => join(s.sb.tmpDir, 'root');
    const env = (): Record<string, string> => ({ TPCTL_ROOT: root() });

    it("the unit's ExecStop and ExecStart remove and reapply redirection; uninstall removes the persistence", async (t: TestContext) => {
      const iptables = e.engine.startsWith('iptables');
      if (iptables) {
        mkdirSync(join(root(), 'etc/firewalld'), { recursive: true });
        writeFileSync(join(root(), 'etc/firewalld/direct.xml'), FOREIGN_DIRECT);
      }
      const extra = iptables ? ['--store-firewalld'] : [];
      const inst = await cli(s.sb, ['install', 'transparent-proxy', ...conformanceFlags(s.sb), ...engineFlags(e.engine, s.sb), ...extra, '--persist'], undefined, env());
      if (isKernelTooOld(inst)) t.skip(`kernel too old: ${inst.stderr.trim()}`);
      expect(inst.exitCode, describeCli(inst)).toBe(0);
      expect(inst.stdout.split('\n'), inst.stdout).toContain(`persisted: settings in ${join(root(), 'etc/tpctl/transparent-proxy.yaml')}, tpctl-transparent-proxy.service enabled (${join(root(), UNIT)})`);
      expect(await via(s.sb)).toBe('proxy');
      const unit = readFileSync(join(root(), UNIT), 'utf8');
      expect(linkExists(join(root(), 'etc/systemd/system/multi-user.target.wants/tpctl-transparent-proxy.service'))).toBe(true);
      const command = (key: string): string[] => tokenize(new RegExp(`^${key}=(.*)$`, 'm').exec(unit)![1]!);
      if (iptables) expect(readFileSync(join(root(), 'etc/firewalld/direct.xml'), 'utf8')).toContain('TPCTL_OUTBOUND');

      // "reboot": the unit stops (keeping its files), then starts again from the persisted settings alone
      const stop = await runIn(s.sb, 'mesh', command('ExecStop'), { env: { ...process.env, ...env() } as Record<string, string>, timeoutMs: 60_000 });
      expect(stop.exitCode, describeCli(stop)).toBe(0);
      expect(await via(s.sb)).toBe('remote');
      expect(existsSync(join(root(), UNIT))).toBe(true);
      const start = await runIn(s.sb, 'mesh', command('ExecStart'), { env: { ...process.env, ...env() } as Record<string, string>, timeoutMs: 60_000 });
      expect(start.exitCode, describeCli(start)).toBe(0);
      expect(await via(s.sb)).toBe('proxy');
      const st = await cli(s.sb, ['status', 'transparent-proxy', ...statusFlags(e.engine, s.sb)]);
      expect(st.exitCode, describeCli(st)).toBe(0);

      const un = await cli(s.sb, ['uninstall', 'transparent-proxy', ...(e.engine === 'ebpf' ? ['--ebpf-bpffs-path', s.sb.bpffsPath] : [])], undefined, env());
      expect(un.exitCode, describeCli(un)).toBe(0);
      expect(un.stdout.split('\n'), un.stdout).toContain(
        `boot persistence removed: tpctl-transparent-proxy.service disabled, ${join(root(), UNIT)} and ${join(root(), 'etc/tpctl/transparent-proxy.yaml')} deleted`,
      );
      expect(existsSync(join(root(), UNIT))).toBe(false);
      expect(existsSync(join(root(), 'etc/tpctl/transparent-proxy.yaml'))).toBe(false);
      expect(linkExists(join(root(), 'etc/systemd/system/multi-user.target.wants/tpctl-transparent-proxy.service'))).toBe(false);
      expect(await via(s.sb)).toBe('remote');
      if (iptables) expect(readFileSync(join(root(), 'etc/firewalld/direct.xml'), 'utf8')).toBe(FOREIGN_DIRECT);
    });
  });
}
