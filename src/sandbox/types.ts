/**
 * The shapes the sandbox modules share: a built sandbox and a process started in it.
 * Types only, so building (sandbox.ts), processes (processes.ts) and commands
 * (commands.ts) depend on this file and not on each other.
 */
import type { ChildProcess } from 'node:child_process';

export type SandboxHost = 'client' | 'mesh';

export interface SandboxOptions {
  /**
   * Unique prefix of everything created (netns `<name>-c`/`<name>-m`, cgroup `<name>`),
   * e.g. `tpe2e-nft-b-<pid>`: include the pid so parallel runs never share a name
   * (a leftover with the same name can then only be from a dead run, and is removed;
   * sweepStaleSandboxes() finds such leftovers by that pid).
   */
  name: string;
  /** Host numbers of additional client-host addresses (both families), e.g. [3, 4]. */
  extraClientHosts?: number[];
}

export interface Sandbox {
  readonly name: string;
  /** The third octet / group that tells this sandbox's subnet apart. */
  readonly subnet: number;
  readonly netns: Record<SandboxHost, string>;
  readonly iface: Record<SandboxHost, string>;
  readonly ipv4: Record<SandboxHost, string>;
  readonly ipv6: Record<SandboxHost, string>;
  /** Absolute path of the child cgroup v2 directory. */
  readonly cgroupPath: string;
  /** A private bpffs mount point. */
  readonly bpffsPath: string;
  /** resolv.conf of the mesh host (nameservers = the client host's addresses). */
  readonly resolvConfPath: string;
  /** A scratch directory for the caller, removed by destroy(). */
  readonly tmpDir: string;
  /** `10.231.N.<host>` */
  v4(host: number): string;
  /** `fd00:231:N::<host>` */
  v6(host: number): string;
  /** Processes spawnIn() started here and that still run; destroy() stops them first. */
  readonly processes: Set<SandboxProcess>;
  destroy(): Promise<void>;
}

/** A process started inside the sandbox, with its stdout kept line by line. */
export interface SandboxProcess {
  readonly pid: number;
  readonly child: ChildProcess;
  /** Every stdout line so far. */
  readonly lines: string[];
  readonly stderr: () => string;
  /** Resolves with the first stdout line matching `pred` (past or future); rejects on exit or timeout. */
  waitForLine(pred: (line: string) => boolean, timeoutMs: number): Promise<string>;
  /** Resolves with the exit code (null when killed by a signal); rejects after timeoutMs. */
  waitForExit(timeoutMs: number): Promise<number | null>;
  writeLine(text: string): void;
  closeStdin(): void;
  /** SIGTERM, then SIGKILL after a bounded grace period. */
  stop(): Promise<void>;
}

