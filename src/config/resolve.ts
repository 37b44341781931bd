/**
 * Flags + config files + pod annotations + environment + defaults →
 * TransparentProxyConfig. layers.ts merges the sources (precedence and labels);
 * here each group of settings becomes its part of the config, with the checks that
 * span settings (conflicts, distinct ports, engine-specific settings).
 *
 * Pure apart from the injected host lookups (users, resolv.conf, executables on
 * PATH), so it is unit tested without root and without touching the host.
 */
import { ConfigError } from '../errors.js';
import type { HostLookups, UserLookup } from './lookups.js';
import { parseResolvConf } from './resolvconf.js';
import type { AnnotationsInput } from './annotations.js';
import { DEFAULTS, defaultProgramsSourcePath } from './defaults.js';
import { buildLayers, parseAt, type Layers } from './layers.js';
import { UNINSTALL_FLAGS, type ConfigFileInput, type RawFlags } from './schema.js';
import type { SettingId } from './settings.js';
import type { DnsConfig, EbpfConfig, EngineName, IpFamily, IptablesBackend, ProxyUser, TransparentProxyConfig, UninstallConfig } from './types.js';
import * as v from './values.js';

export type { HostLookups };

export interface ResolveInput {
  flags?: RawFlags;
  files?: ConfigFileInput[];
  /** A pod's annotations (--pod-annotations), parsed. */
  annotations?: AnnotationsInput;
  /** Environment variables the settings table names (KUMA_TRANSPARENT_PROXY_*, TPCTL_ENGINE). */
  env?: Record<string, string | undefined>;
}

export interface Resolved<T> {
  config: T;
  /** One line each; the caller prints them as `warning: …`. */
  warnings: string[];
  /** Choices tpctl made that the user should hear about (the engine it picked); one line each. */
  notes?: string[];
}

/** What the resolving steps share: the merged sources, the lookups, and the warnings so far. */
interface Ctx {
  layers: Layers;
  host: HostLookups;
  env: Record<string, string | undefined>;
  warnings: string[];
  notes: string[];
  ipv4Only: boolean;
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

/** --kuma-dp-uid (deprecated): folded into kumaDpUser, or checked against it. */
function deprecatedUid(ctx: Ctx, flags: RawFlags): void {
  if (flags.kumaDpUid === undefined) return;
  if (flags.kumaDpUser !== undefined) {
    // Both name the proxy's user: the same user is redundant, two different ones a mistake.
    const viaUser = resolveUser(parseAt('--kuma-dp-user', () => v.parseUserSpec(flags.kumaDpUser)), '--kuma-dp-user', ctx.host.users);
    const viaUid = resolveUser(parseAt('--kuma-dp-uid', () => v.parseUserSpec(flags.kumaDpUid)), '--kuma-dp-uid', ctx.host.users);
    if (viaUser.uid !== viaUid.uid) {
      throw new ConfigError(`--kuma-dp-uid: uid ${viaUid.uid} is not the user --kuma-dp-user names (uid ${viaUser.uid})`, {
        hint: '--kuma-dp-uid is a deprecated alias of --kuma-dp-user: pass only --kuma-dp-user',
      });
    }
    ctx.warnings.push('--kuma-dp-uid is deprecated and ignored because --kuma-dp-user is given');
  } else {
    ctx.warnings.push('--kuma-dp-uid is deprecated; use --kuma-dp-user (it takes a uid or a name)');
    ctx.layers.set('kumaDpUser', { value: flags.kumaDpUid, label: '--kuma-dp-uid', fromFlag: true });
  }
}

/**
 * kumactl settings tpctl accepts but implements differently, or not at all: each
 * warns in one line saying what tpctl does instead; the few that would change what
 * gets redirected are errors.
 */
function kumactlCompat(ctx: Ctx): void {
  const { layers, warnings } = ctx;
  const label = (id: SettingId): string => layers.label(id);
  if (layers.has('skipResolvConf')) warnings.push('--skip-resolv-conf is deprecated and has no effect (tpctl never edits resolv.conf)');
  if (layers.has('experimentalEngine')) warnings.push('--experimental-transparent-proxy-engine is deprecated and has no effect');
  if (layers.has('kumaCpIp')) warnings.push('--kuma-cp-ip is deprecated (kumactl 2.2) and has no effect');
  if (layers.value('transparentProxyEngineV1')) {
    warnings.push('--use-transparent-proxy-engine-v1 has no effect: tpctl has one iptables rule builder (choose an engine with --engine)');
  }
  const upstream = layers.given('dnsUpstreamTargetChain');
  if (upstream !== undefined) {
    warnings.push(
      upstream === 'RETURN'
        ? "--redirect-dns-upstream-target-chain is deprecated; RETURN is what tpctl does (the proxy's own DNS queries are never redirected)"
        : `--redirect-dns-upstream-target-chain ${upstream} is ignored: the proxy's own DNS queries are never redirected (RETURN)`,
    );
  }
  const v6Port = layers.given('inboundPortV6');
  if (v6Port !== undefined) {
    const port = layers.value('inboundPort');
    warnings.push(`--redirect-inbound-port-v6 is kumactl 2.2's: IPv6 inbound connections go to the inbound port ${port}, like IPv4${v6Port === port ? '' : ` (${v6Port} ignored)`}`);
  }
  for (const id of ['excludeOutboundTcpPortsForUids', 'excludeOutboundUdpPortsForUids'] as const) {
    if (layers.has(id)) {
      const proto = id === 'excludeOutboundTcpPortsForUids' ? 'tcp' : 'udp';
      warnings.push(`${label(id)} is kumactl 2.2's; read as --exclude-outbound-ports-for-uids ${proto}:PORTS:UID`);
    }
  }
  if (layers.value('commentsDisabled')) {
    warnings.push(`${label('commentsDisabled')}: tpctl keeps its rule comments (reinstall, uninstall and status identify its rules by them)`);
  }
  for (const id of ['inboundInsertFirst', 'outboundInsertFirst'] as const) {
    if (layers.has(id) && !layers.value(id)) warnings.push(`${label(id)}=false is ignored: tpctl always inserts its jump rules first`);
  }
  const level = layers.value('logLevel');
  if (level !== 7) warnings.push(`${label('logLevel')}: tpctl logs at level 7 (debug); ${level} is ignored`);
  if (layers.has('chainNames')) warnings.push(`${label('chainNames')} is ignored: tpctl names its chains TPCTL_*`);

  const refuse = (id: SettingId, why: string): never => {
    throw new ConfigError(`${label(id)}: not supported by tpctl`, { hint: why });
  };
  if (layers.value('cniMode')) refuse('cniMode', 'tpctl installs on a host, not as a CNI plugin');
  for (const id of ['inboundIncludePorts', 'outboundIncludePorts'] as const) {
    if (layers.value(id).length > 0) refuse(id, 'redirecting only listed ports is not supported; use excludePorts');
  }
  if (layers.value('inboundExcludePortsForUids').length > 0) refuse('inboundExcludePortsForUids', 'uid exclusions apply to outbound traffic only');
}

/** With --ip-family-mode ipv4, drops IPv6 entries (kumactl filters them per family too) and says so. */
function keepFamily<T>(items: T[], familyOf: (item: T) => IpFamily, ctx: Ctx, label: string): T[] {
  if (!ctx.ipv4Only) return items;
  const kept = items.filter((c) => familyOf(c) === 'ipv4');
  if (kept.length !== items.length) ctx.warnings.push(`${label}: IPv6 entries ignored with --ip-family-mode ipv4`);
  return kept;
}

function resolveDns(ctx: Ctx): DnsConfig {
  const { layers, ipv4Only } = ctx;
  const redirectDns = layers.value('redirectDns');
  const captureAll = layers.value('redirectAllDns');
  if (redirectDns && captureAll) {
    throw new ConfigError(`${layers.label('redirectDns')}: conflicts with ${layers.label('redirectAllDns')}`, {
      hint: 'pass only one: --redirect-dns captures the resolv.conf nameservers, --redirect-all-dns-traffic every :53',
    });
  }
  const mode = captureAll ? 'all' : redirectDns ? 'resolvconf' : 'off';
  const resolvConfPath = layers.value('resolvConfPath');
  const servers = { ipv4: [] as string[], ipv6: [] as string[] };
  if (mode === 'resolvconf') {
    const label = layers.label('redirectDns');
    let text: string;
    try {
      text = ctx.host.readResolvConf(resolvConfPath);
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
  return { mode, port: layers.value('dnsPort'), servers, resolvConfPath, conntrackZoneSplit: !layers.value('skipDnsConntrackZoneSplit') };
}

/** Binaries of the iptables engine (the tools it runs, or the package's front end). */
const IPTABLES_BINARIES = ['iptables', 'iptables-nft-restore', 'iptables-legacy-restore'];

/**
 * The engine: `engine` (flag, env, file) and `ebpf.enabled` may both be set, and then
 * must agree. Neither: iptables, except on a host with `nft` and no iptables binary.
 */
function resolveEngine(ctx: Ctx): EngineName {
  const { layers } = ctx;
  const chosen = layers.given('engine');
  const ebpf = layers.given('ebpfEnabled');
  if (chosen !== undefined && ebpf !== undefined && ebpf !== (chosen === 'ebpf')) {
    throw new ConfigError(`${layers.label('engine')}: ${chosen} conflicts with ${layers.label('ebpfEnabled')}=${ebpf}`, {
      hint: "--ebpf-enabled is kumactl's spelling of --engine ebpf: choose the engine once",
    });
  }
  if (chosen !== undefined) return chosen;
  if (ebpf) return 'ebpf';
  const has = ctx.host.hasExecutable;
  if (has && !IPTABLES_BINARIES.some((b) => has(b)) && has('nft')) {
    ctx.notes.push('engine: nftables (this host has nft but no iptables binary; choose with --engine)');
    return 'nftables';
  }
  return 'iptables';
}

const EBPF_ONLY: SettingId[] = ['ebpfInstanceIp', 'ebpfBpffsPath', 'ebpfCgroupPath', 'ebpfTcAttachIface', 'ebpfProgramsSourcePath'];

/** The instance address: ebpf.instanceIP, else the environment variable ebpf.instanceIPEnvVarName names. */
function instanceIpOf(ctx: Ctx): { ipv4?: string; ipv6?: string } {
  const { layers } = ctx;
  if (layers.has('ebpfInstanceIp')) return layers.value('ebpfInstanceIp');
  const varName = layers.given('ebpfInstanceIpEnvVarName');
  if (varName !== undefined) {
    const value = ctx.env[varName];
    const label = `${layers.label('ebpfInstanceIpEnvVarName')} (${varName})`;
    if (value === undefined || value === '') {
      throw new ConfigError(`${label}: ${varName} is not set`, { hint: "set it to this host's address, or pass --ebpf-instance-ip" });
    }
    return parseAt(label, () => v.parseInstanceIps(value));
  }
  throw new ConfigError(`${layers.label(layers.has('engine') ? 'engine' : 'ebpfEnabled')}: needs --ebpf-instance-ip`, {
    hint: "pass this host's address, e.g. --ebpf-instance-ip 10.0.0.5 or 10.0.0.5,fd00::5",
  });
}

function resolveEbpf(ctx: Ctx, enabled: boolean): EbpfConfig {
  const { layers } = ctx;
  if (!enabled) {
    const stray = EBPF_ONLY.find((id) => layers.fromFlag(id));
    if (stray) throw new ConfigError(`${layers.label(stray)}: has no effect without --ebpf-enabled`, { hint: 'add --ebpf-enabled' });
  }
  let instanceIp: { ipv4?: string; ipv6?: string } = {};
  if (enabled) {
    instanceIp = instanceIpOf(ctx);
    if (ctx.ipv4Only && instanceIp.ipv6 !== undefined) {
      const label = layers.label('ebpfInstanceIp');
      if (instanceIp.ipv4 === undefined) {
        throw new ConfigError(`${label}: only an IPv6 address is given but --ip-family-mode is ipv4`, { hint: 'pass the IPv4 address of this host' });
      }
      ctx.warnings.push(`${label}: IPv6 address ${instanceIp.ipv6} ignored with --ip-family-mode ipv4`);
      instanceIp = { ipv4: instanceIp.ipv4 };
    }
  }
  const ebpf: EbpfConfig = {
    enabled,
    instanceIp,
    programsSourcePath: layers.value('ebpfProgramsSourcePath') ?? defaultProgramsSourcePath(),
    bpffsPath: layers.value('ebpfBpffsPath'),
  };
  const cgroupPath = layers.value('ebpfCgroupPath');
  if (cgroupPath !== undefined) ebpf.cgroupPath = cgroupPath;
  const tcIface = layers.value('ebpfTcAttachIface');
  if (tcIface !== undefined) ebpf.tcAttachIface = tcIface;
  return ebpf;
}

/**
 * kumactl's --iptables-executables: tpctl runs the backend's -save/-restore tools from
 * PATH, so the paths only choose the backend, when they all name the same one.
 */
function backendFromExecutables(ctx: Ctx, engine: EngineName): IptablesBackend | undefined {
  const { layers } = ctx;
  if (!layers.has('iptablesExecutables')) return undefined;
  const label = layers.label('iptablesExecutables');
  const paths = Object.values(layers.value('iptablesExecutables'));
  const named = new Set(paths.map((p) => (/legacy/.test(p.split('/').pop() ?? '') ? 'legacy' : /nft/.test(p.split('/').pop() ?? '') ? 'nft' : '?')));
  const [only] = named;
  if (engine !== 'iptables' || layers.has('iptablesBackend') || named.size !== 1 || only === '?' || only === undefined) {
    const why = engine !== 'iptables' ? `the ${engine} engine runs no iptables tools` : layers.has('iptablesBackend') ? `${layers.label('iptablesBackend')} chooses the backend` : 'the paths name no single backend';
    ctx.warnings.push(`${label} is ignored: tpctl runs iptables-{nft,legacy}-{save,restore} from PATH (${why})`);
    return undefined;
  }
  const backend = only as IptablesBackend;
  ctx.warnings.push(`${label}: tpctl runs the ${backend} backend's tools from PATH (as --iptables-backend ${backend})`);
  return backend;
}

/** Listener ports must differ, or one redirect would land on another listener. */
function checkDistinctPorts(ctx: Ctx, inboundEnabled: boolean, dnsOn: boolean): void {
  const { layers } = ctx;
  const ports: Array<{ id: SettingId; port: number; what: string }> = [{ id: 'outboundPort', port: layers.value('outboundPort'), what: 'outbound' }];
  if (inboundEnabled) ports.push({ id: 'inboundPort', port: layers.value('inboundPort'), what: 'inbound' });
  if (dnsOn) ports.push({ id: 'dnsPort', port: layers.value('dnsPort'), what: 'DNS' });
  for (let i = 0; i < ports.length; i++) {
    for (let j = 0; j < i; j++) {
      const a = ports[j];
      const b = ports[i];
      if (a && b && a.port === b.port) {
        const [later, earlier] = layers.has(b.id) ? [b, a] : [a, b];
        throw new ConfigError(
          layers.has(earlier.id)
            ? `${layers.label(later.id)}: ${later.port} is already the ${earlier.what} port set by ${layers.label(earlier.id)}`
            : `${layers.label(later.id)}: ${later.port} is already the default ${earlier.what} port`,
          { hint: 'the outbound, inbound and DNS listeners need distinct ports' },
        );
      }
    }
  }
}

/** Resolves the install configuration. Throws ConfigError on the first bad value. */
export function resolveConfig(input: ResolveInput, host: HostLookups): Resolved<TransparentProxyConfig> {
  const { layers, flags } = buildLayers(input);
  const ctx: Ctx = { layers, host, env: input.env ?? {}, warnings: [], notes: [], ipv4Only: false };
  deprecatedUid(ctx, flags);
  kumactlCompat(ctx);

  const ipFamilyMode = layers.value('ipFamilyMode');
  ctx.ipv4Only = ipFamilyMode === 'ipv4';
  const inboundEnabled = layers.value('inboundEnabled');
  if (!layers.value('outboundEnabled')) {
    throw new ConfigError(`${layers.label('outboundEnabled')}: false is not supported`, { hint: 'tpctl always redirects outbound traffic; remove the setting' });
  }
  const dns = resolveDns(ctx);

  const engine = resolveEngine(ctx);
  const ebpf = resolveEbpf(ctx, engine === 'ebpf');
  let storeFirewalld = layers.value('storeFirewalld');
  if (engine !== 'iptables' && storeFirewalld) {
    ctx.warnings.push(`${layers.label('storeFirewalld')} is ignored with ${engine === 'ebpf' ? '--ebpf-enabled' : 'the nftables engine'}`);
    storeFirewalld = false;
  }
  if (engine === 'nftables' && layers.fromFlag('iptablesBackend')) ctx.warnings.push(`${layers.label('iptablesBackend')} is ignored with the nftables engine`);
  if (engine === 'ebpf' && !dns.conntrackZoneSplit) ctx.warnings.push(`${layers.label('skipDnsConntrackZoneSplit')} is ignored with --ebpf-enabled`);
  const iptablesBackend = backendFromExecutables(ctx, engine) ?? layers.value('iptablesBackend');

  checkDistinctPorts(ctx, inboundEnabled, dns.mode !== 'off');
  const kumaDpUser = resolveUser(layers.value('kumaDpUser'), layers.label('kumaDpUser'), host.users);
  const cidrs = (id: 'excludeInboundIps' | 'excludeOutboundIps') => keepFamily(layers.value(id), (c) => c.family, ctx, layers.label(id));

  const config: TransparentProxyConfig = {
    kumaDpUser,
    ipFamilyMode,
    inbound: { enabled: inboundEnabled, port: layers.value('inboundPort'), excludePorts: layers.value('excludeInboundPorts'), excludeIps: cidrs('excludeInboundIps') },
    outbound: {
      port: layers.value('outboundPort'),
      excludePorts: layers.value('excludeOutboundPorts'),
      excludeIps: cidrs('excludeOutboundIps'),
      excludePortsForUids: layers.value('excludeOutboundPortsForUids'),
    },
    dns,
    vnet: keepFamily(layers.value('vnet'), (n) => n.cidr.family, ctx, layers.label('vnet')),
    dropInvalidPackets: layers.value('dropInvalidPackets'),
    iptablesLogs: layers.value('iptablesLogs'),
    storeFirewalld,
    iptablesBackend,
    retry: {
      wait: layers.value('wait'),
      waitInterval: layers.value('waitInterval'),
      maxRetries: layers.value('maxRetries'),
      sleepBetweenRetriesMs: layers.value('sleepBetweenRetries'),
    },
    ebpf,
    engine,
    dryRun: layers.value('dryRun'),
    verbose: layers.value('verbose'),
  };
  return { config, warnings: ctx.warnings, notes: ctx.notes };
}

/** Resolves `uninstall transparent-proxy`: only the settings uninstall uses are read. */
export function resolveUninstallConfig(input: ResolveInput): Resolved<UninstallConfig> {
  const { layers } = buildLayers({ ...input, annotations: undefined }, UNINSTALL_FLAGS);
  const config: UninstallConfig = {
    dryRun: layers.value('dryRun'),
    verbose: layers.value('verbose'),
    ebpf: {
      enabled: layers.value('ebpfEnabled') || layers.value('engine') === 'ebpf',
      bpffsPath: layers.value('ebpfBpffsPath'),
    },
    iptablesBackend: layers.value('iptablesBackend'),
  };
  return { config, warnings: [] };
}

