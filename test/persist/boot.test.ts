/**
 * The unit and config --persist writes: systemd-analyze verify accepts the unit, and
 * enable/disable work under a temporary root (`systemctl --root`), never the real /etc.
 */
import { existsSync, lstatSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterEach, describe, expect, it } from 'vitest';
import { bootPaths, removeBootPersistence, renderUnit, UNIT_NAME, writeBootPersistence } from '../../src/persist/boot.js';
import { silentLogger } from '../../src/config/types.js';
import { defaultConfig } from '../iptables/fixtures.js';

describe('boot persistence', () => {
  let dir = '';
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  const tmp = (): string => (dir = mkdtempSync(join(tmpdir(), 'tpt-i8-boot-')));

  for (const engine of ['iptables', 'ebpf'] as const) {
    it(`the ${engine} unit passes systemd-analyze verify`, async () => {
      const cfg = defaultConfig();
      cfg.ebpf.enabled = engine === 'ebpf';
      const unit = join(tmp(), UNIT_NAME);
      writeFileSync(unit, renderUnit(cfg, '/etc/tpctl/transparent-proxy.yaml'));
      const r = await execa('systemd-analyze', ['verify', unit], { reject: false, timeout: 60_000 });
      const ours = `${r.stdout}\n${r.stderr}`.split('\n').filter((l) => l.includes(UNIT_NAME) || l.includes('tpctl'));
      expect(ours, `${r.stdout}\n${r.stderr}`).toEqual([]);
      expect(r.exitCode, `${r.stdout}\n${r.stderr}`).toBe(0);
      const text = readFileSync(unit, 'utf8');
      expect(text).toMatch(/^Before=kuma-dp\.service/m);
      expect(text).toMatch(engine === 'iptables' ? /^Before=network-pre\.target$/m : /^After=network-online\.target/m);
    });
  }

  it('writes root-only settings and an enabled unit under TPCTL_ROOT; uninstall disables and removes both', async () => {
    const root = tmp();
    const env = { TPCTL_ROOT: root };
    const lines = await writeBootPersistence(defaultConfig(), env);
    const p = bootPaths(env);
    expect(lines).toEqual([`persisted: settings in ${p.config}, tpctl-transparent-proxy.service enabled (${p.unit})`]);
    expect(statSync(p.config).mode & 0o777).toBe(0o600);
    expect(readFileSync(p.config, 'utf8')).toMatch(/kumaDPUser: "5678"/);
    expect(readFileSync(p.unit, 'utf8')).toContain(`--config ${p.config}`);
    const wants = join(root, 'etc/systemd/system/multi-user.target.wants', UNIT_NAME);
    expect(lstatSync(wants).isSymbolicLink()).toBe(true);
    const removed = await removeBootPersistence(silentLogger, env);
    expect(removed).toEqual([`boot persistence removed: tpctl-transparent-proxy.service disabled, ${p.unit} and ${p.config} deleted`]);
    expect(existsSync(wants)).toBe(false);
    expect(existsSync(p.unit)).toBe(false);
    expect(existsSync(p.config)).toBe(false);
    expect(existsSync(join(root, 'etc/tpctl'))).toBe(false);
    expect(await removeBootPersistence(silentLogger, env)).toEqual([]);
  });
});
