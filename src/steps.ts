/**
 * Named steps of an install or uninstall, so a test can fail or stop the real CLI at
 * any of them (crash-safety tests kill it there with SIGKILL).
 *
 * The engines call `steps.reached(name)` right after each change to the host has
 * been made and recorded. In production the hooks are empty and a step costs a
 * counter increment. The CLI builds the hooks once from its environment
 * (TPCTL_FAIL_AT, TPCTL_STOP_AT, TPCTL_TRACE_STEPS) and passes them down; nothing
 * else in the library reads the environment.
 */
import { writeSync } from 'node:fs';
import { EngineError } from './errors.js';

export interface StepHooks {
  /** Throw an EngineError at the step with this name (the engine then rolls back). */
  failAt?: string;
  /** Stop the process (SIGSTOP) at the step with this name or 1-based number. */
  stopAt?: string;
  /** Print `tpctl-step N NAME` on stderr at every step. */
  trace?: boolean;
}

/** The lines a test waits for (stderr). */
export const STEP_TRACE_PREFIX = 'tpctl-step';
export const STEP_STOPPED_PREFIX = 'tpctl-stopped';

export class Steps {
  private count = 0;

  constructor(private readonly hooks: StepHooks = {}) {}

  /**
   * Whether a fault is to be injected at `name` by the engine itself (where the fault
   * must happen inside an external transaction, e.g. one `nft -f`), not by reached().
   */
  injectsFaultAt(name: string): boolean {
    return this.hooks.failAt === name;
  }

  /** A change is made and recorded: the host is in a state a crash could leave. */
  reached(name: string): void {
    this.count++;
    const { failAt, stopAt, trace } = this.hooks;
    if (!failAt && !stopAt && !trace) return;
    // Written synchronously so the line is out before the process stops or dies.
    if (trace) writeSync(2, `${STEP_TRACE_PREFIX} ${this.count} ${name}\n`);
    if (failAt === name) throw new EngineError(`fault injected at ${name} (TPCTL_FAIL_AT)`);
    if (stopAt === name || stopAt === String(this.count)) {
      writeSync(2, `${STEP_STOPPED_PREFIX} ${this.count} ${name}\n`);
      process.kill(process.pid, 'SIGSTOP');
    }
  }
}

/** Hooks from the CLI's environment; an empty object in production. */
export function stepHooksFromEnv(env: Record<string, string | undefined>): StepHooks {
  const hooks: StepHooks = {};
  if (env['TPCTL_FAIL_AT']) hooks.failAt = env['TPCTL_FAIL_AT'];
  if (env['TPCTL_STOP_AT']) hooks.stopAt = env['TPCTL_STOP_AT'];
  if (env['TPCTL_TRACE_STEPS'] === '1') hooks.trace = true;
  return hooks;
}
