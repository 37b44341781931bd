import { describe, expect, it } from 'vitest';
import { EngineError } from '../src/errors.js';
import { Steps, stepHooksFromEnv } from '../src/steps.js';

describe('step hooks', () => {
  it('are empty in production: reaching a step does nothing', () => {
    const steps = new Steps(stepHooksFromEnv({}));
    expect(() => ['a', 'b', 'c'].forEach((s) => steps.reached(s))).not.toThrow();
  });

  it('TPCTL_FAIL_AT injects an EngineError at the named step only', () => {
    const steps = new Steps(stepHooksFromEnv({ TPCTL_FAIL_AT: 'maps-pinned' }));
    steps.reached('record-written');
    expect(() => steps.reached('maps-pinned')).toThrow(EngineError);
    expect(() => steps.reached('maps-pinned')).toThrow('fault injected at maps-pinned (TPCTL_FAIL_AT)');
  });

  it('reads the stop and trace settings, and nothing else, from the environment', () => {
    expect(stepHooksFromEnv({ TPCTL_STOP_AT: '7', TPCTL_TRACE_STEPS: '1', PATH: '/bin' })).toEqual({ stopAt: '7', trace: true });
    expect(stepHooksFromEnv({ TPCTL_TRACE_STEPS: 'yes' })).toEqual({});
  });
});
