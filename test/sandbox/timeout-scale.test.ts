/** TPCTL_TEST_TIMEOUT_SCALE: the one knob that stretches every fixed wait of the tests. */
import { describe, expect, it } from 'vitest';
import { selectEngines } from '../../src/sandbox/harness.js';
import { timeoutScale } from '../../src/sandbox/timeout-scale.js';

describe('timeoutScale', () => {
  it('is 1 when unset or empty, the number given otherwise', () => {
    expect(timeoutScale({})).toBe(1);
    expect(timeoutScale({ TPCTL_TEST_TIMEOUT_SCALE: '' })).toBe(1);
    expect(timeoutScale({ TPCTL_TEST_TIMEOUT_SCALE: '6' })).toBe(6);
    expect(timeoutScale({ TPCTL_TEST_TIMEOUT_SCALE: '1.5' })).toBe(1.5);
  });

  it('refuses what is not a positive number, naming the variable', () => {
    for (const bad of ['0', '-2', 'fast', 'Infinity']) {
      expect(() => timeoutScale({ TPCTL_TEST_TIMEOUT_SCALE: bad })).toThrow(/TPCTL_TEST_TIMEOUT_SCALE: ".*" is not a positive number/);
    }
  });
});

describe('selectEngines (TPCTL_TEST_ENGINES)', () => {
  const all = [{ engine: 'iptables-nft' as const }, { engine: 'iptables-legacy' as const }, { engine: 'ebpf' as const }];

  it('keeps every engine when unset, the named ones otherwise', () => {
    expect(selectEngines(all, {})).toEqual(all);
    expect(selectEngines(all, { TPCTL_TEST_ENGINES: 'ebpf' })).toEqual([{ engine: 'ebpf' }]);
    expect(selectEngines(all, { TPCTL_TEST_ENGINES: 'ebpf, iptables-nft' }).map((e) => e.engine)).toEqual(['iptables-nft', 'ebpf']);
  });

  it('refuses an unknown engine name rather than running nothing', () => {
    expect(() => selectEngines(all, { TPCTL_TEST_ENGINES: 'bpf' })).toThrow(/unknown engine bpf/);
  });
});
