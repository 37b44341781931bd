/**
 * Default values, kumactl's where kumactl has one. The eBPF paths are tpctl's own:
 * its bpffs directory, and the objects shipped in this package's bpf/prebuilt.
 */
import { fileURLToPath } from 'node:url';

export const DEFAULTS = {
  inboundPort: 15006,
  outboundPort: 15001,
  dnsPort: 15053,
  /** kumactl looks for this uid first, then for the user name below. */
  proxyUid: 5678,
  proxyUserName: 'kuma-dp',
  resolvConfPath: '/etc/resolv.conf',
  bpffsPath: '/run/tpctl/bpf',
  waitSeconds: 5,
  waitIntervalMicros: 0,
  maxRetries: 4,
  sleepBetweenRetriesMs: 2000,
} as const;

/** bpf/prebuilt of this package: dist/config/defaults.js → ../../bpf/prebuilt. */
export function defaultProgramsSourcePath(): string {
  return fileURLToPath(new URL('../../bpf/prebuilt', import.meta.url));
}
