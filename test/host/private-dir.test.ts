import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PreflightError } from '../../src/errors.js';
import { requirePrivateDir } from '../../src/host/private-dir.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), `tpt-i7-private-${process.pid}-`));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const refusal = (path: string): string => {
  try {
    requirePrivateDir('--ebpf-bpffs-path x', path);
  } catch (e) {
    expect(e).toBeInstanceOf(PreflightError);
    return (e as PreflightError).oneLine();
  }
  return 'accepted';
};

describe('requirePrivateDir', () => {
  it('accepts a private directory under a sticky world-writable ancestor (/tmp), and missing components', () => {
    expect(refusal(dir)).toBe('accepted');
    expect(refusal(join(dir, 'not', 'yet'))).toBe('accepted');
  });

  it('refuses a directory writable by group or others, naming the mode and the fix', () => {
    const p = join(dir, 'open');
    mkdirSync(p);
    chmodSync(p, 0o777);
    expect(refusal(join(p, 'bpf'))).toBe(
      `--ebpf-bpffs-path x: ${p} is writable by group or others (mode 0777) (chmod go-w ${p} (tpctl's own directories are 0700), or pass another path)`,
    );
    // Sticky is enough for an ancestor (others cannot replace our entry), not for the directory itself.
    chmodSync(p, 0o1777);
    expect(refusal(join(p, 'bpf'))).toBe('accepted');
    expect(refusal(p)).toBe(
      `--ebpf-bpffs-path x: ${p} is writable by group or others (mode 1777) (chmod go-w ${p} (tpctl's own directories are 0700), or pass another path)`,
    );
  });

  it('refuses a symbolic link anywhere on the way, without following it', () => {
    mkdirSync(join(dir, 'real'));
    symlinkSync(join(dir, 'real'), join(dir, 'link'));
    expect(refusal(join(dir, 'link', 'bpf'))).toBe(
      `--ebpf-bpffs-path x: ${join(dir, 'link')} is a symbolic link (tpctl does not follow symbolic links there: pass the real path)`,
    );
  });
});
