import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { holdsOurPins, inventoryPins, requireOwnPinDir } from '../../src/ebpf/pin-dir.js';

// A plain directory stands in for the pin directory: the inventory only looks at names and lstat.
let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), `tpt-i7-pins-${process.pid}-`));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('the pin directory inventory', () => {
  it('finds our maps, record and link pins by name', () => {
    writeFileSync(join(dir, 'tp_cfg_v1'), '');
    writeFileSync(join(dir, 'tp_state_v1'), '');
    writeFileSync(join(dir, 'maps.debug'), '');
    mkdirSync(join(dir, 'links'));
    writeFileSync(join(dir, 'links', 'tp_connect4'), '');
    const inv = inventoryPins(dir);
    expect(inv).toMatchObject({ maps: ['tp_cfg_v1'], links: [join(dir, 'links', 'tp_connect4')], state: true, linksDir: true, foreign: [], untrusted: [] });
    expect(holdsOurPins(inv)).toBe(true);
    expect(() => requireOwnPinDir('--ebpf-bpffs-path d', dir)).not.toThrow();
  });

  it('an empty or missing directory holds nothing of ours', () => {
    expect(holdsOurPins(inventoryPins(dir))).toBe(false);
    expect(holdsOurPins(inventoryPins(join(dir, 'missing')))).toBe(false);
  });

  it('refuses entries tpctl does not create, naming a few', () => {
    for (const name of ['evil', 'b', 'c', 'd']) mkdirSync(join(dir, name));
    mkdirSync(join(dir, 'links'));
    writeFileSync(join(dir, 'links', 'not_ours'), '');
    expect(() => requireOwnPinDir('--ebpf-bpffs-path d', dir)).toThrow('--ebpf-bpffs-path d: holds b, c, d and 2 more, which tpctl did not create');
  });

  it('does not follow a symbolic link in place of links/ or a pin', () => {
    mkdirSync(join(dir, 'elsewhere'));
    writeFileSync(join(dir, 'elsewhere', 'tp_connect4'), '');
    symlinkSync(join(dir, 'elsewhere'), join(dir, 'links'));
    const inv = inventoryPins(dir);
    expect(inv.links).toEqual([]);
    expect(inv.untrusted).toEqual([`${join(dir, 'links')} is a symbolic link`]);
  });
});
