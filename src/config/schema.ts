/**
 * The raw input shapes: command-line flags and config files (YAML or JSON).
 *
 * The config file mirrors kumactl's transparent-proxy config file (same key names,
 * same nesting) so a kumactl file works here, plus the tpctl extension
 * `iptablesBackend`. zod checks the structure (known keys, value kinds); the content of
 * each value (port ranges, CIDRs, uid rules …) is checked by src/config/values.ts so
 * every message can name the value and say what is allowed.
 */
import { z } from 'zod';

const kind = (expected: string): z.RawCreateParams => ({ errorMap: () => ({ message: `expected ${expected}` }) });

const boolLeaf = z.boolean(kind('true or false'));
const scalarLeaf = z.union([z.string(), z.number()], kind('a number or a string'));
const stringLeaf = z.string(kind('a string'));
const listLeaf = z.union(
  [z.string(), z.number(), z.array(z.union([z.string(), z.number()]))],
  kind('a list, or a comma-separated string'),
);
const stringListLeaf = z.union([z.string(), z.array(z.string())], kind('a list of strings'));

const trafficFlowInbound = z
  .object({
    enabled: boolLeaf,
    port: scalarLeaf,
    excludePorts: listLeaf,
    excludePortsForIPs: listLeaf,
  })
  .partial()
  .strict();

const trafficFlowOutbound = z
  .object({
    enabled: boolLeaf,
    port: scalarLeaf,
    excludePorts: listLeaf,
    excludePortsForIPs: listLeaf,
    excludePortsForUIDs: stringListLeaf,
  })
  .partial()
  .strict();

export const configFileSchema = z
  .object({
    kumaDPUser: scalarLeaf,
    ipFamilyMode: stringLeaf,
    redirect: z
      .object({
        inbound: trafficFlowInbound,
        outbound: trafficFlowOutbound,
        dns: z
          .object({
            enabled: boolLeaf,
            captureAll: boolLeaf,
            port: scalarLeaf,
            skipConntrackZoneSplit: boolLeaf,
            resolvConfigPath: stringLeaf,
          })
          .partial()
          .strict(),
        vnet: z.object({ networks: stringListLeaf }).partial().strict(),
      })
      .partial()
      .strict(),
    ebpf: z
      .object({
        enabled: boolLeaf,
        instanceIP: listLeaf,
        bpffsPath: stringLeaf,
        cgroupPath: stringLeaf,
        tcAttachIface: stringLeaf,
        programsSourcePath: stringLeaf,
      })
      .partial()
      .strict(),
    log: z.object({ enabled: boolLeaf }).partial().strict(),
    retry: z.object({ maxRetries: scalarLeaf, sleepBetweenRetries: scalarLeaf }).partial().strict(),
    wait: scalarLeaf,
    waitInterval: scalarLeaf,
    dropInvalidPackets: boolLeaf,
    storeFirewalld: boolLeaf,
    verbose: boolLeaf,
    dryRun: boolLeaf,
    /** tpctl extension. */
    iptablesBackend: stringLeaf,
    /** tpctl extension: iptables, nftables or ebpf. */
    engine: stringLeaf,
  })
  .partial()
  .strict();

export type ConfigFile = z.infer<typeof configFileSchema>;

/**
 * Keys kumactl's file knows that tpctl deliberately does not implement: named in the
 * error so a user with a kumactl file learns why, instead of "unknown key".
 */
export const UNSUPPORTED_KUMA_KEYS: Record<string, string> = {
  cniMode: 'tpctl installs on a host, not as a CNI plugin',
  comments: 'tpctl always comments its rules (uninstall relies on them)',
  'log.level': 'tpctl logs at the kernel default level',
  iptablesExecutables: 'use iptablesBackend: nft|legacy instead',
  'redirect.inbound.includePorts': 'not supported; use excludePorts',
  'redirect.outbound.includePorts': 'not supported; use excludePorts',
  'redirect.inbound.insertRedirectInsteadOfAppend': 'tpctl always inserts its jump rules first',
  'redirect.outbound.insertRedirectInsteadOfAppend': 'tpctl always inserts its jump rules first',
  'redirect.inbound.excludePortsForUIDs': 'uid exclusions apply to outbound traffic only',
  'ebpf.instanceIPEnvVarName': 'pass the address itself with ebpf.instanceIP',
};

/** One config file as read: where it came from (for messages) and its parsed content. */
export interface ConfigFileInput {
  /** The path as given, or `<stdin>`. */
  source: string;
  data: unknown;
}

const flagValue = z.union([z.string(), z.number(), z.boolean()]);
const flagList = z.union([z.string(), z.array(z.string())]);

/**
 * Command-line flags (and the library's options object), named as commander names
 * them: `--redirect-inbound-port` → `redirectInboundPort`. Values stay raw (strings,
 * or true for a bare boolean flag) until resolveConfig parses them.
 */
export const rawFlagsSchema = z
  .object({
    config: flagList,
    kumaDpUser: flagValue,
    kumaDpUid: flagValue,
    ipFamilyMode: flagValue,
    redirectInbound: flagValue,
    redirectInboundPort: flagValue,
    redirectOutboundPort: flagValue,
    excludeInboundPorts: flagList,
    excludeOutboundPorts: flagList,
    excludeInboundIps: flagList,
    excludeOutboundIps: flagList,
    excludeOutboundPortsForUids: flagList,
    redirectDns: flagValue,
    redirectAllDnsTraffic: flagValue,
    redirectDnsPort: flagValue,
    skipDnsConntrackZoneSplit: flagValue,
    resolvConfPath: flagValue,
    dropInvalidPackets: flagValue,
    iptablesLogs: flagValue,
    vnet: flagList,
    storeFirewalld: flagValue,
    wait: flagValue,
    waitInterval: flagValue,
    maxRetries: flagValue,
    sleepBetweenRetries: flagValue,
    dryRun: flagValue,
    verbose: flagValue,
    skipResolvConf: flagValue,
    experimentalTransparentProxyEngine: flagValue,
    iptablesBackend: flagValue,
    engine: flagValue,
    ebpfEnabled: flagValue,
    ebpfInstanceIp: flagList,
    ebpfProgramsSourcePath: flagValue,
    ebpfBpffsPath: flagValue,
    ebpfCgroupPath: flagValue,
    ebpfTcAttachIface: flagValue,
  })
  .partial()
  .strict();

export type RawFlags = z.infer<typeof rawFlagsSchema>;
export type RawFlagName = keyof RawFlags;

/** Flags `tpctl uninstall transparent-proxy` takes. */
export const UNINSTALL_FLAGS = ['config', 'dryRun', 'verbose', 'ebpfEnabled', 'ebpfBpffsPath', 'iptablesBackend', 'engine'] as const;
export type RawUninstallFlags = Pick<RawFlags, (typeof UNINSTALL_FLAGS)[number]>;

/** `redirectInboundPort` → `--redirect-inbound-port`. */
export function flagName(attr: string): string {
  return `--${attr.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}
