/**
 * The eBPF engine on the kernel it runs on, through the real CLI in a sandbox: on a
 * kernel older than MIN_KERNEL an install is refused with exactly one line naming the
 * kernel, the minimum and the tested kernels (exit 3), and the host is left as it was;
 * on a newer kernel the same install succeeds, loads the sockops program whose netns
 * check the kernel supports (the bpf_get_netns_cookie one from 5.15, the BTF inode one
 * before: Debian 11's 5.10 in the VM matrix), and uninstall restores the host. The
 * version is the test's cross-check only: tpctl itself decides by a feature probe.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MIN_KERNEL, TESTED_KERNELS } from '../../src/ebpf/preflight.js';
import { SOCKOPS_PROGRAM } from '../../src/ebpf/spec.js';
import { currentKernel, kernelAtLeast } from '../../src/host/kernel.js';
import { conformanceFlags, describeCli, ebpfState, engineFlags, engineState, runCli, uninstallFlags } from '../../src/sandbox/harness.js';
import { createSandbox } from '../../src/sandbox/sandbox.js';
import type { Sandbox } from '../../src/sandbox/types.js';

const kernel = currentKernel();
const supported = kernelAtLeast(kernel, MIN_KERNEL.major, MIN_KERNEL.minor);
const netnsCheck = kernelAtLeast(kernel, 5, 15) ? 'cookie' : 'inode';

describe(`eBPF engine on kernel ${kernel.release}`, () => {
  let sb: Sandbox | undefined;
  beforeAll(async () => {
    sb = await createSandbox({ name: `tpe2e-ks-${process.pid}` });
  });
  afterAll(async () => {
    await sb?.destroy();
  });

  it(supported ? `installs with the ${netnsCheck} netns check (${SOCKOPS_PROGRAM[netnsCheck]}) and uninstalls (kernel supported)` : 'refuses to install in one line and changes nothing (kernel too old)', async () => {
    if (!sb) throw new Error('sandbox not created');
    const before = await engineState('ebpf', sb);
    const install = await runCli(sb, ['install', 'transparent-proxy', ...conformanceFlags(sb), ...engineFlags('ebpf', sb)]);
    if (!supported) {
      expect(install.exitCode, describeCli(install)).toBe(3);
      const lines = install.stderr.trim().split('\n');
      expect(lines, 'one line on stderr').toHaveLength(1);
      expect(lines[0]).toMatch(new RegExp(`^error: eBPF transparent proxy: kernel ${kernel.release.replace(/[.+]/g, '\\$&')} is too old, need ${MIN_KERNEL.major}\\.${MIN_KERNEL.minor} or newer \\(tested on ${TESTED_KERNELS.join(', ')};`));
      expect(await engineState('ebpf', sb), 'the host is as it was').toBe(before);
      return;
    }
    expect(install.exitCode, describeCli(install)).toBe(0);
    const installed = await engineState('ebpf', sb);
    expect(installed).not.toBe(before);
    const programs = (await ebpfState(sb)).cgroupPrograms.split('\n');
    const sockops = programs.filter((l) => /sock_ops /.test(l)).map((l) => l.split(' ').at(-1));
    expect(sockops, programs.join('\n')).toEqual([SOCKOPS_PROGRAM[netnsCheck]]);
    const uninstall = await runCli(sb, ['uninstall', 'transparent-proxy', ...uninstallFlags('ebpf', sb)]);
    expect(uninstall.exitCode, describeCli(uninstall)).toBe(0);
    expect(await engineState('ebpf', sb), 'uninstall restores the host').toBe(before);
  });
});
