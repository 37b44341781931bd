/**
 * Network interfaces and their addresses, as seen from this process's network
 * namespace. Read with `ip -j addr` (netlink) rather than /sys/class/net: sysfs
 * shows the namespace it was mounted in, so after `nsenter --net` it would
 * describe the wrong namespace.
 */
import { CommandError } from '../errors.js';
import { runTool, succeeded } from './run-tool.js';

export interface InterfaceAddress {
  family: 'ipv4' | 'ipv6';
  address: string;
  prefixLength: number;
}

export interface NetInterface {
  name: string;
  ifindex: number;
  /** IFF_UP is set (administratively up). */
  adminUp: boolean;
  /** Kernel operstate: UP, DOWN, UNKNOWN (loopback, some virtual devices), LOWERLAYERDOWN … */
  operState: string;
  addresses: InterfaceAddress[];
}

interface IpJsonAddrInfo {
  family?: string;
  local?: string;
  prefixlen?: number;
}
interface IpJsonLink {
  ifindex?: number;
  ifname?: string;
  flags?: string[];
  operstate?: string;
  addr_info?: IpJsonAddrInfo[];
}

export function parseIpAddrJson(text: string): NetInterface[] {
  const raw = JSON.parse(text) as IpJsonLink[];
  return raw
    .filter((l) => typeof l.ifname === 'string' && typeof l.ifindex === 'number')
    .map((l) => ({
      name: l.ifname as string,
      ifindex: l.ifindex as number,
      adminUp: (l.flags ?? []).includes('UP'),
      operState: (l.operstate ?? 'UNKNOWN').toUpperCase(),
      addresses: (l.addr_info ?? [])
        .filter((a) => (a.family === 'inet' || a.family === 'inet6') && typeof a.local === 'string')
        .map((a) => ({
          family: a.family === 'inet' ? ('ipv4' as const) : ('ipv6' as const),
          address: a.local as string,
          prefixLength: a.prefixlen ?? 0,
        })),
    }));
}

export async function listInterfaces(): Promise<NetInterface[]> {
  const r = await runTool('ip', ['-j', 'addr', 'show'], { timeoutMs: 30_000 });
  if (!succeeded(r)) throw new CommandError('ip -j addr show', r.stderr || r.stdout || r.failure || `exit code ${r.exitCode}`);
  return parseIpAddrJson(r.stdout.trim() || '[]');
}

/** Up means administratively up and not reported down by the driver (UNKNOWN counts as up: loopback, tun). */
export function isUp(i: NetInterface): boolean {
  return i.adminUp && (i.operState === 'UP' || i.operState === 'UNKNOWN');
}

/** The interface holding `address` (canonical text form), if any. */
export function interfaceWithAddress(ifaces: NetInterface[], address: string): NetInterface | undefined {
  const want = address.toLowerCase();
  return ifaces.find((i) => i.addresses.some((a) => a.address.toLowerCase() === want));
}
