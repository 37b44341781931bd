/**
 * Default values, kumactl's where kumactl has one. The eBPF paths are tpctl's own:
 * its bpffs directory, and the objects shipped in this package's bpf/prebuilt.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
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

/**
 * bpf/prebuilt of this package: found from the nearest directory holding package.json,
 * so it is the same from src/config/, from tsc's dist/config/ and from the bundled
 * dist/tpctl.cjs.
 */
export function defaultProgramsSourcePath(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  let dir = here;
  while (!existsSync(join(dir, 'package.json')) && dirname(dir) !== dir) dir = dirname(dir);
  return join(existsSync(join(dir, 'package.json')) ? dir : join(here, '..', '..'), 'bpf', 'prebuilt');
}
