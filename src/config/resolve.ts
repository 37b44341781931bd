/**
 * Flags + config files + defaults → TransparentProxyConfig.
 *
 * Precedence: defaults < config files in the order given < flags. Every setting keeps a
 * label of where its winning value came from (`--redirect-inbound-port`, or
 * `tp.yaml: redirect.inbound.port`), so every error names exactly what to fix.
 *
 * Pure apart from the two injected host lookups (users, resolv.conf), so it is unit
 * tested without root and without touching the host.
 */
import type { ZodError, ZodIssue } from 'zod';
import { ConfigError } from '../errors.js';
import { findExecutable } from '../host/executables.js';
import { parseResolvConf, readResolvConfFile } from '../host/resolvconf.js';
import { systemUserLookup, type UserLookup } from '../host/users.js';
import { DEFAULTS, defaultProgramsSourcePath } from './defaults.js';
import {
  configFileSchema,
  flagName,
  rawFlagsSchema,
  UNINSTALL_FLAGS,
  UNSUPPORTED_KUMA_KEYS,
  type ConfigFileInput,
  type RawFlagName,
  type RawFlags,
} from './schema.js';
import { ENGINE_NAMES } from './types.js';
import type {
  Cidr,
  DnsMode,
  EngineName,
  IpFamily,
  IptablesBackend,
  ProxyUser,
  TransparentProxyConfig,
  UninstallConfig,
} from './types.js';
import { quoteValue, ValueError } from './value-error.js';
import * as v from './values.js';

export interface HostLookups {
  users: UserLookup;
  /** Text of a resolv.conf file; throws (ENOENT …) when it can't be read. */
  readResolvConf(path: string): string;
  /**
   * Whether an executable is on PATH: with no --engine, a host with `nft` and no
   * iptables binary gets the nftables engine. Absent: the iptables default stands.
   */
  hasExecutable?(name: string): boolean;
}

export function systemHostLookups(): HostLookups {
  return { users: systemUserLookup(), readResolvConf: readResolvConfFile, hasExecutable: (name) => findExecutable(name) !== undefined };
}

export interface ResolveInput {
  flags?: RawFlags;
  files?: ConfigFileInput[];
  /** Environment variables (ENV_FOR_KEY): between config files and flags in precedence. */
  env?: Record<string, string | undefined>;
}

export interface Resolved<T> {
  config: T;
  /** One line each; the caller prints them as `warning: …`. */
  warnings: string[];
  /** Choices tpctl made that the user should hear about (the engine it picked); one line each. */
  notes?: string[];
}

/** Settings an environment variable can give (kumactl's env vars are not read; these are tpctl's). */
const ENV_FOR_KEY: Record<string, string> = {
  engine: 'TPCTL_ENGINE',
};

/** Where a file key is set from the command line (flags without a file key are flag-only). */
const FLAG_FOR_KEY: Record<string, RawFlagName> = {
  kumaDPUser: 'kumaDpUser',
  ipFamilyMode: 'ipFamilyMode',
  'redirect.inbound.enabled': 'redirectInbound',
  'redirect.inbound.port': 'redirectInboundPort',
  'redirect.inbound.excludePorts': 'excludeInboundPorts',
  'redirect.inbound.excludePortsForIPs': 'excludeInboundIps',
  'redirect.outbound.port': 'redirectOutboundPort',
  'redirect.outbound.excludePorts': 'excludeOutboundPorts',
  'redirect.outbound.excludePortsForIPs': 'excludeOutboundIps',
  'redirect.outbound.excludePortsForUIDs': 'excludeOutboundPortsForUids',
  'redirect.dns.enabled': 'redirectDns',
  'redirect.dns.captureAll': 'redirectAllDnsTraffic',
  'redirect.dns.port': 'redirectDnsPort',
  'redirect.dns.skipConntrackZoneSplit': 'skipDnsConntrackZoneSplit',
  'redirect.dns.resolvConfigPath': 'resolvConfPath',
  'redirect.vnet.networks': 'vnet',
  'ebpf.enabled': 'ebpfEnabled',
  'ebpf.instanceIP': 'ebpfInstanceIp',
  'ebpf.bpffsPath': 'ebpfBpffsPath',
  'ebpf.cgroupPath': 'ebpfCgroupPath',
  'ebpf.tcAttachIface': 'ebpfTcAttachIface',
  'ebpf.programsSourcePath': 'ebpfProgramsSourcePath',
  'log.enabled': 'iptablesLogs',
  'retry.maxRetries': 'maxRetries',
  'retry.sleepBetweenRetries': 'sleepBetweenRetries',
  wait: 'wait',
  waitInterval: 'waitInterval',
  dropInvalidPackets: 'dropInvalidPackets',
  storeFirewalld: 'storeFirewalld',
  verbose: 'verbose',
  dryRun: 'dryRun',
  iptablesBackend: 'iptablesBackend',
  engine: 'engine',
};

interface Sourced {
  value: unknown;
  label: string;
  fromFlag: boolean;
}

/** The winning value of every setting that some source set. */
class Layers {
  private readonly values = new Map<string, Sourced>();

  set(key: string, s: Sourced): void {
    this.values.set(key, s);
  }

  has(key: string): boolean {
    return this.values.has(key);
  }

  label(key: string): string {
    return this.values.get(key)?.label ?? labelOfFlagFor(key);
  }

  fromFlag(key: string): boolean {
    return this.values.get(key)?.fromFlag ?? false;
  }

  /** The parsed value, or `fallback` when no source set it; a bad value becomes a ConfigError naming its source. */
  get<T>(key: string, parse: (raw: unknown) => T, fallback: T): T {
    const s = this.values.get(key);
    if (!s) return fallback;
    return parseAt(s.label, () => parse(s.value));
  }
}

function labelOfFlagFor(key: string): string {
  const attr = FLAG_FOR_KEY[key];
  return attr ? flagName(attr) : key;
}

function parseAt<T>(label: string, parse: () => T): T {
  try {
    return parse();
  } catch (e) {
    if (e instanceof ValueError) throw new ConfigError(`${label}: ${e.problem}`, e.allowed ? { hint: e.allowed } : {});
    throw e;
  }
}

function isPlainObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function describeReceived(x: unknown): string {
  if (x === null || x === undefined) return 'nothing';
  if (Array.isArray(x)) return 'a list';
  if (typeof x === 'object') return 'a mapping';
  return `${typeof x} ${typeof x === 'string' ? quoteValue(x) : String(x)}`;
}

function valueAtPath(data: unknown, path: (string | number)[]): unknown {
  let cur: unknown = data;
  for (const p of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string | number, unknown>)[p];
  }
  return cur;
}

function formatZodIssue(source: string, data: unknown, issue: ZodIssue): ConfigError {
  const at = issue.path.join('.');
  if (issue.code === 'unrecognized_keys') {
    const key = issue.keys[0] ?? '';
    const full = at ? `${at}.${key}` : key;
    const unsupported = UNSUPPORTED_KUMA_KEYS[full];
    if (unsupported) return new ConfigError(`${source}: ${full}: not supported by tpctl`, { hint: unsupported });
    return new ConfigError(`${source}: ${full}: unknown key`, { hint: `allowed here: ${allowedKeysAt(issue.path).join(', ')}` });
  }
  const got = describeReceived(valueAtPath(data, issue.path));
  // Sections have no custom zod message; leaves carry theirs (`expected true or false`).
  const hint = issue.code === 'invalid_type' && issue.expected === 'object' ? 'expected a mapping' : issue.message;
  return new ConfigError(`${source}: ${at || '(top level)'}: ${got} is not allowed`, { hint });
}

/** Keys the schema accepts in the mapping at `path` (for "unknown key" hints). */
function allowedKeysAt(path: (string | number)[]): string[] {
  // Walk the zod shape: every level is ZodOptional<ZodObject> after .partial().
  let schema: unknown = configFileSchema;
  for (const p of path) {
    const shape = shapeOf(schema);
    schema = shape?.[String(p)];
  }
  return Object.keys(shapeOf(schema) ?? {});
}

function shapeOf(schema: unknown): Record<string, unknown> | undefined {
  let s = schema as { _def?: { innerType?: unknown; typeName?: string }; shape?: Record<string, unknown> } | undefined;
  while (s?._def?.typeName === 'ZodOptional') s = s._def.innerType as typeof s;
  return s?.shape;
}

/** Validates a file's structure and returns its set leaves as dotted keys. */
function flattenFile(file: ConfigFileInput): Map<string, unknown> {
  const data = file.data ?? {};
  if (!isPlainObject(data)) {
    throw new ConfigError(`${file.source}: ${describeReceived(data)} at the top level`, {
      hint: 'expected a mapping of settings, e.g. redirect: {inbound: {port: 15006}}',
    });
  }
  const parsed = configFileSchema.safeParse(data);
  if (!parsed.success) {
    const first = (parsed.error as ZodError).issues[0];
    if (first) throw formatZodIssue(file.source, data, first);
  }
  const out = new Map<string, unknown>();
  const walk = (obj: Record<string, unknown>, prefix: string): void => {
    for (const [k, val] of Object.entries(obj)) {
      const key = prefix ? `${prefix}.${k}` : k;
      if (isPlainObject(val)) walk(val, key);
      else if (val !== undefined && val !== null) out.set(key, val);
    }
  };
  walk(data, '');
  return out;
}

function validateFlags(flags: RawFlags | undefined, allowed?: readonly string[]): RawFlags {
  const f = flags ?? {};
  for (const attr of Object.keys(f)) {
    if (allowed && !allowed.includes(attr)) {
      throw new ConfigError(`${flagName(attr)}: not an option of this command`, { hint: `allowed: ${allowed.map(flagName).join(', ')}` });
    }
  }
  const parsed = rawFlagsSchema.safeParse(f);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    if (issue?.code === 'unrecognized_keys') {
      throw new ConfigError(`${flagName(issue.keys[0] ?? '')}: unknown option`, { hint: 'see tpctl install transparent-proxy --help' });
    }
    const attr = String(issue?.path[0] ?? '');
    throw new ConfigError(`${flagName(attr)}: ${describeReceived((f as Record<string, unknown>)[attr])} is not allowed`, {
      hint: 'expected a string, number or boolean',
    });
  }
  return parsed.data;
}

/** Flags given as lists (repeated flags) that hold comma lists are joined into one. */
function flagValueForKey(key: string, value: unknown): unknown {
  const joinable = ['redirect.inbound.excludePorts', 'redirect.outbound.excludePorts'];
  if (joinable.includes(key) && Array.isArray(value)) return value.join(',');
  return value;
}

function buildLayers(input: ResolveInput, allowedFlags?: readonly string[]): { layers: Layers; flags: RawFlags } {
  const flags = validateFlags(input.flags, allowedFlags);
  const layers = new Layers();
  for (const file of input.files ?? []) {
    for (const [key, value] of flattenFile(file)) layers.set(key, { value, label: `${file.source}: ${key}`, fromFlag: false });
  }
  for (const [key, name] of Object.entries(ENV_FOR_KEY)) {
    const value = input.env?.[name];
    if (value !== undefined && value !== '') layers.set(key, { value, label: name, fromFlag: false });
  }
  for (const [key, attr] of Object.entries(FLAG_FOR_KEY)) {
    const value = flags[attr];
    if (value !== undefined) layers.set(key, { value: flagValueForKey(key, value), label: flagName(attr), fromFlag: true });
  }
  return { layers, flags };
}

function resolveUser(spec: { uid: number } | { name: string } | undefined, label: string, users: UserLookup): ProxyUser {
  if (spec === undefined) {
    const byUid = users.byUid(DEFAULTS.proxyUid);
    if (byUid) return { uid: byUid.uid, name: byUid.name };
    const byName = users.byName(DEFAULTS.proxyUserName);
    if (byName) return { uid: byName.uid, name: byName.name };
    throw new ConfigError(
      `--kuma-dp-user: not given, and this host has no user with uid ${DEFAULTS.proxyUid} or name "${DEFAULTS.proxyUserName}"`,
      { hint: `create it, e.g. useradd -r -u ${DEFAULTS.proxyUid} ${DEFAULTS.proxyUserName}, or pass --kuma-dp-user NAME|UID` },
    );
  }
  if ('uid' in spec) {
    // A bare uid needs no passwd entry: containers often run the proxy under an unnamed uid.
    const name = users.localName(spec.uid);
    return name !== undefined ? { uid: spec.uid, name } : { uid: spec.uid };
  }
  const entry = users.byName(spec.name);
  if (!entry) throw new ConfigError(`${label}: no user "${spec.name}" on this host`, { hint: 'create it or pass a uid' });
  return { uid: entry.uid, name: entry.name };
}

/** With --ip-family-mode ipv4, drops IPv6 entries (kumactl filters them per family too) and says so. */
function keepFamily<T>(items: T[], familyOf: (item: T) => IpFamily, ipv4Only: boolean, label: string, warnings: string[]): T[] {
  if (!ipv4Only) return items;
  const kept = items.filter((c) => familyOf(c) === 'ipv4');
  if (kept.length !== items.length) warnings.push(`${label}: IPv6 entries ignored with --ip-family-mode ipv4`);
  return kept;
}

/** Resolves the install configuration. Throws ConfigError on the first bad value. */
export function resolveConfig(input: ResolveInput, host: HostLookups = systemHostLookups()): Resolved<TransparentProxyConfig> {
  const { layers, flags } = buildLayers(input);
  const warnings: string[] = [];

  // Deprecated flags kumactl still accepts.
  if (flags.kumaDpUid !== undefined) {
    if (flags.kumaDpUser !== undefined) {
      // Both name the proxy's user: the same user is redundant, two different ones a mistake.
      const viaUser = resolveUser(parseAt('--kuma-dp-user', () => v.parseUserSpec(flags.kumaDpUser)), '--kuma-dp-user', host.users);
      const viaUid = resolveUser(parseAt('--kuma-dp-uid', () => v.parseUserSpec(flags.kumaDpUid)), '--kuma-dp-uid', host.users);
      if (viaUser.uid !== viaUid.uid) {
        throw new ConfigError(
          `--kuma-dp-uid: uid ${viaUid.uid} is not the user --kuma-dp-user names (uid ${viaUser.uid})`,
          { hint: '--kuma-dp-uid is a deprecated alias of --kuma-dp-user: pass only --kuma-dp-user' },
        );
      }
      warnings.push('--kuma-dp-uid is deprecated and ignored because --kuma-dp-user is given');
    } else {
      warnings.push('--kuma-dp-uid is deprecated; use --kuma-dp-user (it takes a uid or a name)');
      layers.set('kumaDPUser', { value: flags.kumaDpUid, label: '--kuma-dp-uid', fromFlag: true });
    }
  }
  if (flags.skipResolvConf !== undefined) warnings.push('--skip-resolv-conf is deprecated and has no effect (tpctl never edits resolv.conf)');
  if (flags.experimentalTransparentProxyEngine !== undefined) {
    warnings.push('--experimental-transparent-proxy-engine is deprecated and has no effect');
  }

  const ipFamilyMode = layers.get('ipFamilyMode', v.parseIpFamilyMode, 'dualstack');
  const ipv4Only = ipFamilyMode === 'ipv4';

  const inboundEnabled = layers.get('redirect.inbound.enabled', v.parseBool, true);
  const inboundPort = layers.get('redirect.inbound.port', v.parsePort, DEFAULTS.inboundPort);
  const outboundEnabled = layers.get('redirect.outbound.enabled', v.parseBool, true);
  if (!outboundEnabled) {
    throw new ConfigError(`${layers.label('redirect.outbound.enabled')}: false is not supported`, {
      hint: 'tpctl always redirects outbound traffic; remove the setting',
    });
  }
  const outboundPort = layers.get('redirect.outbound.port', v.parsePort, DEFAULTS.outboundPort);
  const dnsPort = layers.get('redirect.dns.port', v.parsePort, DEFAULTS.dnsPort);

  const excludeCidrs = (key: string): Cidr[] =>
    keepFamily(layers.get(key, v.parseCidrList, []), (c) => c.family, ipv4Only, layers.label(key), warnings);

  // DNS
  const redirectDns = layers.get('redirect.dns.enabled', v.parseBool, false);
  const captureAll = layers.get('redirect.dns.captureAll', v.parseBool, false);
  if (redirectDns && captureAll) {
    throw new ConfigError(`${layers.label('redirect.dns.enabled')}: conflicts with ${layers.label('redirect.dns.captureAll')}`, {
      hint: 'pass only one: --redirect-dns captures the resolv.conf nameservers, --redirect-all-dns-traffic every :53',
    });
  }
  const dnsMode: DnsMode = captureAll ? 'all' : redirectDns ? 'resolvconf' : 'off';
  const resolvConfPath = layers.get('redirect.dns.resolvConfigPath', (x) => v.parsePath(x), DEFAULTS.resolvConfPath);
  const servers = { ipv4: [] as string[], ipv6: [] as string[] };
  if (dnsMode === 'resolvconf') {
    const label = layers.label('redirect.dns.enabled');
    let text: string;
    try {
      text = host.readResolvConf(resolvConfPath);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new ConfigError(`${label}: cannot read ${resolvConfPath}${code ? `: ${code}` : ''}`, {
        hint: 'pass --resolv-conf-path, or use --redirect-all-dns-traffic',
      });
    }
    const found = parseResolvConf(text);
    servers.ipv4 = found.ipv4;
    servers.ipv6 = ipv4Only ? [] : found.ipv6;
    if (servers.ipv4.length === 0 && servers.ipv6.length === 0) {
      throw new ConfigError(`${label}: ${resolvConfPath} lists no ${ipv4Only ? 'IPv4 ' : ''}nameserver`, {
        hint: 'add a nameserver line, pass --resolv-conf-path, or use --redirect-all-dns-traffic',
      });
    }
  }
  const skipZoneSplit = layers.get('redirect.dns.skipConntrackZoneSplit', v.parseBool, false);

  // Engine: --engine / engine / TPCTL_ENGINE, or kumactl's --ebpf-enabled; both given must agree.
  const notes: string[] = [];
  const engine = resolveEngine(layers, host, notes);
  const ebpfEnabled = engine === 'ebpf';
  const ebpfKeys = ['ebpf.instanceIP', 'ebpf.bpffsPath', 'ebpf.cgroupPath', 'ebpf.tcAttachIface', 'ebpf.programsSourcePath'];
  if (!ebpfEnabled) {
    const stray = ebpfKeys.find((k) => layers.fromFlag(k));
    if (stray) {
      throw new ConfigError(`${layers.label(stray)}: has no effect without --ebpf-enabled`, { hint: 'add --ebpf-enabled' });
    }
  }
  let instanceIp: { ipv4?: string; ipv6?: string } = {};
  if (ebpfEnabled) {
    if (!layers.has('ebpf.instanceIP')) {
      throw new ConfigError(`${layers.label(layers.has('engine') ? 'engine' : 'ebpf.enabled')}: needs --ebpf-instance-ip`, {
        hint: "pass this host's address, e.g. --ebpf-instance-ip 10.0.0.5 or 10.0.0.5,fd00::5",
      });
    }
    instanceIp = layers.get('ebpf.instanceIP', v.parseInstanceIps, {});
    if (ipv4Only && instanceIp.ipv6 !== undefined) {
      if (instanceIp.ipv4 === undefined) {
        throw new ConfigError(`${layers.label('ebpf.instanceIP')}: only an IPv6 address is given but --ip-family-mode is ipv4`, {
          hint: 'pass the IPv4 address of this host',
        });
      }
      warnings.push(`${layers.label('ebpf.instanceIP')}: IPv6 address ${instanceIp.ipv6} ignored with --ip-family-mode ipv4`);
      instanceIp = { ipv4: instanceIp.ipv4 };
    }
  }

  let storeFirewalld = layers.get('storeFirewalld', v.parseBool, false);
  if (engine !== 'iptables' && storeFirewalld) {
    warnings.push(`${layers.label('storeFirewalld')} is ignored with ${engine === 'ebpf' ? '--ebpf-enabled' : 'the nftables engine'}`);
    storeFirewalld = false;
  }
  if (engine === 'nftables' && layers.fromFlag('iptablesBackend')) warnings.push(`${layers.label('iptablesBackend')} is ignored with the nftables engine`);
  if (ebpfEnabled && skipZoneSplit) warnings.push(`${layers.label('redirect.dns.skipConntrackZoneSplit')} is ignored with --ebpf-enabled`);

  // Listener ports must differ, or one redirect would land on another listener.
  const ports: Array<{ key: string; port: number; what: string }> = [
    { key: 'redirect.outbound.port', port: outboundPort, what: 'outbound' },
  ];
  if (inboundEnabled) ports.push({ key: 'redirect.inbound.port', port: inboundPort, what: 'inbound' });
  if (dnsMode !== 'off') ports.push({ key: 'redirect.dns.port', port: dnsPort, what: 'DNS' });
  for (let i = 0; i < ports.length; i++) {
    for (let j = 0; j < i; j++) {
      const a = ports[j];
      const b = ports[i];
      if (a && b && a.port === b.port) {
        const [later, earlier] = layers.has(b.key) ? [b, a] : [a, b];
        throw new ConfigError(
          layers.has(earlier.key)
            ? `${layers.label(later.key)}: ${later.port} is already the ${earlier.what} port set by ${layers.label(earlier.key)}`
            : `${layers.label(later.key)}: ${later.port} is already the default ${earlier.what} port`,
          { hint: 'the outbound, inbound and DNS listeners need distinct ports' },
        );
      }
    }
  }

  const userSpec = layers.get<ReturnType<typeof v.parseUserSpec> | undefined>('kumaDPUser', v.parseUserSpec, undefined);
  const kumaDpUser = resolveUser(userSpec, layers.label('kumaDPUser'), host.users);

  const vnet = layers.get('redirect.vnet.networks', v.parseVnets, []);
  const config: TransparentProxyConfig = {
    kumaDpUser,
    ipFamilyMode,
    inbound: {
      enabled: inboundEnabled,
      port: inboundPort,
      excludePorts: layers.get('redirect.inbound.excludePorts', v.parsePortList, []),
      excludeIps: excludeCidrs('redirect.inbound.excludePortsForIPs'),
    },
    outbound: {
      port: outboundPort,
      excludePorts: layers.get('redirect.outbound.excludePorts', v.parsePortList, []),
      excludeIps: excludeCidrs('redirect.outbound.excludePortsForIPs'),
      excludePortsForUids: layers.get('redirect.outbound.excludePortsForUIDs', v.parseUidExclusions, []),
    },
    dns: {
      mode: dnsMode,
      port: dnsPort,
      servers,
      resolvConfPath,
      conntrackZoneSplit: !skipZoneSplit,
    },
    vnet: keepFamily(vnet, (n) => n.cidr.family, ipv4Only, layers.label('redirect.vnet.networks'), warnings),
    dropInvalidPackets: layers.get('dropInvalidPackets', v.parseBool, false),
    iptablesLogs: layers.get('log.enabled', v.parseBool, false),
    storeFirewalld,
    iptablesBackend: layers.get('iptablesBackend', parseBackend, 'auto'),
    retry: {
      wait: layers.get('wait', v.parseUint, DEFAULTS.waitSeconds),
      waitInterval: layers.get('waitInterval', v.parseUint, DEFAULTS.waitIntervalMicros),
      maxRetries: layers.get('retry.maxRetries', v.parseUint, DEFAULTS.maxRetries),
      sleepBetweenRetriesMs: layers.get('retry.sleepBetweenRetries', v.parseDurationMs, DEFAULTS.sleepBetweenRetriesMs),
    },
    ebpf: {
      enabled: ebpfEnabled,
      instanceIp,
      programsSourcePath: layers.get('ebpf.programsSourcePath', (x) => v.parsePath(x), defaultProgramsSourcePath()),
      bpffsPath: layers.get('ebpf.bpffsPath', (x) => v.parsePath(x, { absolute: true }), DEFAULTS.bpffsPath),
    },
    engine,
    dryRun: layers.get('dryRun', v.parseBool, false),
    verbose: layers.get('verbose', v.parseBool, false),
  };
  const cgroupPath = layers.get<string | undefined>('ebpf.cgroupPath', (x) => v.parsePath(x, { absolute: true }), undefined);
  if (cgroupPath !== undefined) config.ebpf.cgroupPath = cgroupPath;
  const tcIface = layers.get<string | undefined>('ebpf.tcAttachIface', v.parseInterfaceName, undefined);
  if (tcIface !== undefined) config.ebpf.tcAttachIface = tcIface;
  return { config, warnings, notes };
}

function parseEngine(x: unknown): EngineName {
  return v.parseEnum(x, ENGINE_NAMES);
}

/** Binaries of the iptables engine (the tools it runs, or the package's front end). */
const IPTABLES_BINARIES = ['iptables', 'iptables-nft-restore', 'iptables-legacy-restore'];

/**
 * The engine: `engine` (flag, env, file) and `ebpf.enabled` may both be set, and then
 * must agree. Neither: iptables, except on a host with `nft` and no iptables binary.
 */
function resolveEngine(layers: Layers, host: HostLookups, notes: string[]): EngineName {
  const chosen = layers.has('engine') ? layers.get('engine', parseEngine, 'iptables') : undefined;
  const ebpf = layers.has('ebpf.enabled') ? layers.get('ebpf.enabled', v.parseBool, false) : undefined;
  if (chosen !== undefined && ebpf !== undefined && ebpf !== (chosen === 'ebpf')) {
    throw new ConfigError(`${layers.label('engine')}: ${chosen} conflicts with ${layers.label('ebpf.enabled')}=${ebpf}`, {
      hint: '--ebpf-enabled is kumactl\'s spelling of --engine ebpf: choose the engine once',
    });
  }
  if (chosen !== undefined) return chosen;
  if (ebpf) return 'ebpf';
  const has = host.hasExecutable;
  if (has && !IPTABLES_BINARIES.some((b) => has(b)) && has('nft')) {
    notes.push('engine: nftables (this host has nft but no iptables binary; choose with --engine)');
    return 'nftables';
  }
  return 'iptables';
}

function parseBackend(x: unknown): IptablesBackend {
  return v.parseEnum(x, ['auto', 'nft', 'legacy'] as const);
}

/** Resolves `uninstall transparent-proxy`: only the settings uninstall uses are read. */
export function resolveUninstallConfig(input: ResolveInput): Resolved<UninstallConfig> {
  const { layers } = buildLayers(input, UNINSTALL_FLAGS);
  const config: UninstallConfig = {
    dryRun: layers.get('dryRun', v.parseBool, false),
    verbose: layers.get('verbose', v.parseBool, false),
    ebpf: {
      enabled: layers.get('ebpf.enabled', v.parseBool, false) || layers.get<EngineName | undefined>('engine', parseEngine, undefined) === 'ebpf',
      bpffsPath: layers.get('ebpf.bpffsPath', (x) => v.parsePath(x, { absolute: true }), DEFAULTS.bpffsPath),
    },
    iptablesBackend: layers.get('iptablesBackend', parseBackend, 'auto'),
  };
  return { config, warnings: [] };
}
