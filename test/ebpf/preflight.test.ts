/** Preflight decisions that need no root: where the bpffs comes from, which cgroup is used. */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MIN_KERNEL, planBpffs, requireEbpfKernel, resolveCgroup, TESTED_KERNELS } from '../../src/ebpf/preflight.js';
import { KernelTooOldError, PreflightError } from '../../src/errors.js';
import { parseKernelRelease, requireKernel } from '../../src/host/kernel.js';
import type { MountEntry } from '../../src/host/mounts.js';

const dir = mkdtempSync(join(tmpdir(), `tpt-ebpf-pre-${process.pid}-`));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const root: MountEntry = { mountPoint: '/', fsType: 'ext4', source: '/dev/vda1' };

describe('minimum kernel', () => {
  it('is 5.10, the oldest kernel of the VM matrix (Debian 11): older ones are refused with the typed error', () => {
    expect(MIN_KERNEL).toEqual({ major: 5, minor: 10 });
    expect(TESTED_KERNELS[0]).toBe('5.10');
    expect(() => requireKernel('eBPF transparent proxy', MIN_KERNEL.major, MIN_KERNEL.minor, parseKernelRelease('5.4.0-150-generic'))).toThrow(KernelTooOldError);
    expect(() => requireKernel('eBPF transparent proxy', MIN_KERNEL.major, MIN_KERNEL.minor, parseKernelRelease('5.10.0-28-amd64'))).not.toThrow();
  });
});

describe('planBpffs', () => {
  it('uses a directory inside a bpffs as is, creating missing levels there', () => {
    const bpf: MountEntry = { mountPoint: dir, fsType: 'bpf', source: 'bpf' };
    expect(planBpffs(join(dir, 'a', 'b'), [root, bpf])).toEqual({
      path: join(dir, 'a', 'b'),
      createDirs: [join(dir, 'a'), join(dir, 'a', 'b')],
      mount: false,
    });
    expect(planBpffs(dir, [root, bpf])).toEqual({ path: dir, createDirs: [], mount: false });
  });

  it('mounts a bpffs on a directory that is not on one, creating it if needed', () => {
    expect(planBpffs(join(dir, 'run', 'bpf'), [root])).toEqual({
      path: join(dir, 'run', 'bpf'),
      createDirs: [join(dir, 'run'), join(dir, 'run', 'bpf')],
      mount: true,
    });
    const empty = join(dir, 'empty');
    mkdirSync(empty);
    expect(planBpffs(empty, [root])).toEqual({ path: empty, createDirs: [], mount: true });
  });

  it('refuses to mount over a non-empty directory or under a file', () => {
    const full = join(dir, 'full');
    mkdirSync(full);
    writeFileSync(join(full, 'x'), '');
    expect(() => planBpffs(full, [root])).toThrow(/not on a bpffs and not empty/);
    expect(() => planBpffs(join(full, 'x', 'y'), [root])).toThrow(PreflightError);
  });
});

describe('resolveCgroup', () => {
  const cg: MountEntry = { mountPoint: dir, fsType: 'cgroup2', source: 'cgroup2' };

  it('defaults to the cgroup2 mount root', () => {
    expect(resolveCgroup(undefined, [root, cg])).toBe(dir);
  });

  it('accepts a directory inside the cgroup2 mount only', () => {
    const child = join(dir, 'child');
    mkdirSync(child, { recursive: true });
    expect(resolveCgroup(child, [root, cg])).toBe(child);
    expect(() => resolveCgroup('/etc', [root, cg])).toThrow(/--ebpf-cgroup-path \/etc: not inside a cgroup2 mount/);
    expect(() => resolveCgroup(join(dir, 'missing'), [root, cg])).toThrow(/not a directory/);
  });

  it('explains a host without cgroup v2', () => {
    expect(() => resolveCgroup(undefined, [root])).toThrow(/no cgroup2 mount in \/proc\/self\/mountinfo/);
  });
});

describe('requireEbpfKernel', () => {
  it('accepts MIN_KERNEL, the tested kernels (the VM matrix in make test-vm) and newer ones', () => {
    for (const release of [`${MIN_KERNEL.major}.${MIN_KERNEL.minor}.0`, ...TESTED_KERNELS.map((k) => `${k}.0`), '6.18.44']) {
      expect(requireEbpfKernel(parseKernelRelease(release)).release).toBe(release);
    }
  });

  it('refuses an older kernel in one line that names the tested kernels', () => {
    const tooOld = (): unknown => requireEbpfKernel(parseKernelRelease('5.4.0-150-generic'));
    expect(tooOld).toThrow(KernelTooOldError);
    expect(tooOld).toThrow(new RegExp(`kernel 5\\.4\\.0-150-generic is too old, need ${MIN_KERNEL.major}\\.${MIN_KERNEL.minor} or newer`));
    try {
      tooOld();
    } catch (e) {
      expect((e as KernelTooOldError).hint).toMatch(new RegExp(`tested on ${TESTED_KERNELS.join(', ')}`));
    }
  });
});
