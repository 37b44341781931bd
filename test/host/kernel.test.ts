import { describe, expect, it } from 'vitest';
import { kernelAtLeast, parseKernelRelease, requireKernel } from '../../src/host/kernel.js';
import { KernelTooOldError, PreflightError } from '../../src/errors.js';

describe('kernel version', () => {
  it('parses uname -r forms', () => {
    expect(parseKernelRelease('6.18.44-fc-v669')).toMatchObject({ major: 6, minor: 18, patch: 44 });
    expect(parseKernelRelease('5.10.0-28-amd64\n')).toMatchObject({ major: 5, minor: 10, patch: 0 });
    expect(parseKernelRelease('5.7')).toMatchObject({ major: 5, minor: 7, patch: 0 });
    expect(() => parseKernelRelease('garbage')).toThrow(PreflightError);
  });

  it('compares major.minor', () => {
    expect(kernelAtLeast(parseKernelRelease('5.7.0'), 5, 7)).toBe(true);
    expect(kernelAtLeast(parseKernelRelease('5.6.19'), 5, 7)).toBe(false);
    expect(kernelAtLeast(parseKernelRelease('6.0.1'), 5, 7)).toBe(true);
    expect(kernelAtLeast(parseKernelRelease('4.19.0'), 5, 7)).toBe(false);
  });

  it('names the kernel found when it is too old', () => {
    expect(() => requireKernel('eBPF', 5, 7, parseKernelRelease('5.4.0-150-generic'))).toThrow(KernelTooOldError);
    expect(() => requireKernel('eBPF', 5, 7, parseKernelRelease('5.4.0-150-generic'))).toThrow(/kernel 5.4.0-150-generic is too old, need 5.7/);
  });
});
