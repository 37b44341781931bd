/**
 * Every failure tpctl expects is a TpError: a stable `code`, the process exit code
 * the CLI should use, and an optional `hint` saying how to fix it. The CLI prints
 * `error: <message> (<hint>)` on one line and never a stack trace for these.
 *
 * Messages follow the cilium/ebpf shape `op: cause`, so a reader sees what was being
 * done and what went wrong; the hint says what to do about it.
 */
export interface TpErrorOptions {
  hint?: string;
  cause?: unknown;
  exitCode?: number;
}

export class TpError extends Error {
  readonly code: string;
  readonly exitCode: number;
  readonly hint: string | undefined;

  constructor(code: string, message: string, opts: TpErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.code = code;
    this.exitCode = opts.exitCode ?? 1;
    this.hint = opts.hint;
  }

  /** The one line the CLI prints. */
  oneLine(): string {
    const msg = this.message.replace(/\s*\n\s*/g, '; ');
    return this.hint ? `${msg} (${this.hint})` : msg;
  }
}

/** A flag, config file or environment value is wrong. Nothing was touched. */
export class ConfigError extends TpError {
  constructor(message: string, opts: TpErrorOptions = {}) {
    super('EINVALIDCONFIG', message, { exitCode: 2, ...opts });
  }
}

/** The host lacks something the engine needs. Nothing was touched. */
export class PreflightError extends TpError {
  constructor(message: string, opts: TpErrorOptions = {}) {
    super('EPREFLIGHT', message, { exitCode: 3, ...opts });
  }
}

/**
 * The kernel is too old (or built without a feature). Tests may skip on this type
 * and only on this type; every other failure fails the test.
 */
export class KernelTooOldError extends PreflightError {
  constructor(message: string, opts: TpErrorOptions = {}) {
    super(message, opts);
    (this as { code: string }).code = 'EKERNELTOOOLD';
  }
}

/** The caller lacks root / the needed capabilities. */
export class PrivilegeError extends PreflightError {
  constructor(message: string, opts: TpErrorOptions = {}) {
    super(message, opts);
    (this as { code: string }).code = 'EPRIVILEGE';
  }
}

/** An external command (iptables-restore, ip, tc …) failed. */
export class CommandError extends TpError {
  readonly command: string;
  readonly stderr: string;
  constructor(command: string, stderr: string, opts: TpErrorOptions = {}) {
    const detail = stderr.trim().split('\n').filter(Boolean).slice(-3).join('; ');
    super('ECOMMAND', `${command}: ${detail || 'failed'}`, { exitCode: 4, ...opts });
    this.command = command;
    this.stderr = stderr;
  }
}

/** A libbpf call failed; `op` is the libbpf function, `errno` its negated return. */
export class LibbpfError extends TpError {
  readonly op: string;
  readonly errno: number;
  readonly errnoName: string;
  constructor(op: string, errno: number, errnoName: string, detail = '', opts: TpErrorOptions = {}) {
    super('ELIBBPF', `${op}: ${errnoName}${detail ? ` ${detail}` : ''}`, { exitCode: 5, ...opts });
    this.op = op;
    this.errno = errno;
    this.errnoName = errnoName;
  }
}

/** An install or uninstall step failed after preflight; the message says whether the host was restored. */
export class EngineError extends TpError {
  constructor(message: string, opts: TpErrorOptions = {}) {
    super('EENGINE', message, { exitCode: 6, ...opts });
  }
}

export function isTpError(e: unknown): e is TpError {
  return e instanceof TpError;
}
