/**
 * The settings table: every setting tpctl reads, declared once. From it come the
 * install/uninstall command-line options (src/cli.ts), the config-file schema
 * (schema.ts), the merge of defaults, files, pod annotations, environment and flags
 * (layers.ts, resolve.ts) and the README's tables (settings-doc.ts). Adding a setting
 * is one entry here plus, when it needs one, the place in resolve.ts that uses it.
 *
 * Names follow kumactl: config-file keys are kumactl's file keys, flags its flags,
 * environment variables what its envconfig loader reads (prefix KUMA_TRANSPARENT_PROXY_),
 * annotations what Kuma's injector turns into the init container's arguments.
 */
import { DEFAULTS } from './defaults.js';
import { ENGINE_NAMES, type EngineName, type IptablesBackend } from './types.js';
import { ValueError } from '../value-error.js';
import * as v from './values.js';

/** How a config-file leaf is checked structurally (its content is checked by `parse`). */
export type FileKind = 'bool' | 'scalar' | 'string' | 'list' | 'stringList' | 'executables';

/** Where the README lists a setting. */
export type Section = 'install' | 'ebpf' | 'extension' | 'kumactl';

/** A pod annotation that gives a setting (read from a downward-API file by --pod-annotations). */
export interface AnnotationSource {
  name: string;
  /** Annotation value → the setting's raw value; undefined = the annotation sets nothing. Default: the value as is. */
  toValue?: (value: string) => unknown;
  /** How the README describes the mapping when it is not the plain value. */
  doc?: string;
}

export interface Setting<T = unknown> {
  /** Config-file key path (`redirect.inbound.port`); the merge keys values by it. Absent: flag-only. */
  key?: string;
  fileKind?: FileKind;
  /** The long flag with its value name (`--redirect-inbound-port <port>`); a boolean flag has none. */
  flag?: string;
  /** Boolean flag: `--flag` is true, `--flag=false` false. */
  bool?: boolean;
  /** Repeatable flag: the values accumulate. */
  repeatable?: boolean;
  /** Not shown in --help (deprecated spellings). */
  hidden?: boolean;
  /** Environment variables, first set wins. */
  env?: readonly string[];
  /** An environment value holding a list is split at this separator. */
  envSplit?: string;
  annotations?: readonly AnnotationSource[];
  /** Raw value (flag string, file value, env string) → typed value; throws ValueError. */
  parse: (raw: unknown) => T;
  /** The value when no source sets it. */
  fallback: T;
  /** The default as the README and --help state it ('' = none shown). */
  defaultText: string;
  /** One line for --help. */
  help: string;
  /** The README's text; `help` when absent. */
  doc?: string;
  section: Section;
  /** Also an option of `uninstall transparent-proxy`, with this help. */
  uninstall?: string;
  /** A compatibility flag whose parsed values (a list) are added to this setting's flag values. */
  into?: string;
}

const d = DEFAULTS;

const str = (x: unknown): string => v.parsePath(x);
const anyValue = (x: unknown): unknown => x;
/** Kuma's annotation booleans: true/false/yes/no, and enabled/disabled where it reads "enabled". */
function annotationBool(enabledWords: boolean): (value: string) => boolean {
  return (value) => {
    const t = value.trim();
    if (t === 'true' || t === 'yes' || (enabledWords && t === 'enabled')) return true;
    if (t === 'false' || t === 'no' || (enabledWords && t === 'disabled')) return false;
    throw new ValueError(`${JSON.stringify(t)} is not allowed`, `expected ${enabledWords ? 'enabled, disabled, ' : ''}true, false, yes or no`);
  };
}

export function parseEngine(x: unknown): EngineName {
  return v.parseEnum(x, ENGINE_NAMES);
}

export function parseBackend(x: unknown): IptablesBackend {
  return v.parseEnum(x, ['auto', 'nft', 'legacy'] as const);
}

const KUMA = 'KUMA_TRANSPARENT_PROXY_';
const env = (...names: string[]): readonly string[] => names.map((n) => `${KUMA}${n}`);

/** Kuma's `--iptables-executables` names (name:path pairs; also a mapping in the file). */
export const IPTABLES_EXECUTABLE_NAMES = ['iptables', 'iptables-save', 'iptables-restore', 'ip6tables', 'ip6tables-save', 'ip6tables-restore'] as const;

const EXECUTABLES_ALLOWED = `expected name:path[,name:path…] with names ${IPTABLES_EXECUTABLE_NAMES.join(', ')}`;

/** `iptables:/usr/sbin/iptables-legacy,iptables-save:…` or the file's mapping → name → path. */
export function parseIptablesExecutables(x: unknown): Record<string, string> {
  const pairs: Array<[string, unknown]> =
    typeof x === 'object' && x !== null && !Array.isArray(x)
      ? Object.entries(x as Record<string, unknown>)
      : (Array.isArray(x) ? x : [x])
          .flatMap((item) => String(typeof item === 'string' || typeof item === 'number' ? item : '').split(','))
          .map((s) => s.trim())
          .filter((s) => s !== '')
          .map((s) => {
            const colon = s.indexOf(':');
            if (colon < 0) throw new ValueError(`${JSON.stringify(s)} has no path`, EXECUTABLES_ALLOWED);
            return [s.slice(0, colon).trim(), s.slice(colon + 1).trim()];
          });
  const out: Record<string, string> = {};
  for (const [name, path] of pairs) {
    if (!(IPTABLES_EXECUTABLE_NAMES as readonly string[]).includes(name)) {
      throw new ValueError(`${JSON.stringify(name)} is not an iptables executable name`, EXECUTABLES_ALLOWED);
    }
    out[name] = v.parsePath(path, { absolute: true });
  }
  return out;
}

/** kumactl 2.2's `PORTS:UIDS` (both comma lists) for one protocol → today's `PROTO:PORTS:UID` rules. */
function perProtocolUidRules(protocol: 'tcp' | 'udp'): (raw: unknown) => string[] {
  const allowed = 'expected PORTS:UIDS, e.g. 3000-5000:103,104,106-108';
  return (raw) => {
    const rules: string[] = [];
    for (const item of Array.isArray(raw) ? raw : [raw]) {
      const text = String(item).trim();
      if (text === '') continue;
      const parts = text.split(':');
      if (parts.length !== 2) throw new ValueError(`${JSON.stringify(text)} is not PORTS:UIDS`, allowed);
      const [ports = '', uids = ''] = parts;
      for (const uid of uids.split(',')) rules.push(`${protocol}:${ports.trim()}:${uid.trim()}`);
    }
    // Each rule goes through the ordinary parser, so errors read like the modern flag's.
    for (const r of rules) v.parseUidExclusion(r);
    return rules;
  };
}

const ANNOTATION_APP_PROBE = 'kuma.io/application-probe-proxy-port';

/**
 * The table. Order: how --help and the README list them. Settings without `flag`
 * come from files, environment or annotations only.
 */
export const SETTINGS = {
  config: {
    flag: '--config <file>',
    repeatable: true,
    parse: anyValue,
    fallback: undefined,
    defaultText: '',
    help: 'config file (YAML or JSON, kumactl keys), - for stdin; repeatable or comma-separated, later files win, flags win over files',
    doc: 'YAML or JSON config file (keys below); `-` reads stdin. Repeatable, or a comma-separated list as the latest kumactl takes (`--config a.yaml,b.yaml`). `--config-file` is accepted too (kumactl 2.9\'s name).',
    section: 'install',
    uninstall: 'config file (YAML or JSON), - for stdin; repeatable',
  },
  configFile: {
    flag: '--config-file <file>',
    repeatable: true,
    hidden: true,
    parse: anyValue,
    fallback: undefined,
    defaultText: '',
    help: 'kumactl spelling of --config',
    section: 'kumactl',
    uninstall: 'kumactl spelling of --config',
  },
  podAnnotations: {
    flag: '--pod-annotations <file>',
    parse: str,
    fallback: undefined,
    defaultText: '',
    help: "a Kubernetes downward-API annotations file (init container): Kuma's pod annotations set the settings below",
    doc: "A Kubernetes downward-API annotations file (`key=\"value\"` lines, as the kubelet writes them): Kuma's pod annotations set the settings listed under *Config keys, environment variables and pod annotations*. For an init container; see *Kubernetes init container*.",
    section: 'install',
  },
  kumaDpUser: {
    key: 'kumaDPUser',
    fileKind: 'scalar',
    flag: '--kuma-dp-user <name|uid>',
    env: env('KUMA_DP_USER'),
    annotations: [{ name: 'kuma.io/sidecar-uid' }],
    parse: v.parseUserSpec,
    fallback: undefined as ReturnType<typeof v.parseUserSpec> | undefined,
    defaultText: `uid ${d.proxyUid} if \`/etc/passwd\` has it, else user \`${d.proxyUserName}\``,
    help: `user the proxy runs as; its traffic is never redirected (default: uid ${d.proxyUid}, else user ${d.proxyUserName})`,
    doc: `The user the proxy runs as; its traffic is never redirected. A numeric uid is accepted without a passwd entry (containers); a name must exist. With neither default present, install stops and says to create \`${d.proxyUserName}\` or pass this flag.`,
    section: 'install',
  },
  kumaDpUid: {
    flag: '--kuma-dp-uid <uid>',
    hidden: true,
    parse: anyValue,
    fallback: undefined,
    defaultText: '',
    help: 'deprecated alias of --kuma-dp-user',
    doc: 'Deprecated alias of `--kuma-dp-user` (warns). Given with `--kuma-dp-user` naming another user, it is an error.',
    section: 'kumactl',
  },
  ipFamilyMode: {
    key: 'ipFamilyMode',
    fileKind: 'string',
    flag: '--ip-family-mode <mode>',
    env: env('IP_FAMILY_MODE'),
    annotations: [{ name: 'kuma.io/transparent-proxying-ip-family-mode' }],
    parse: v.parseIpFamilyMode,
    fallback: 'dualstack' as const,
    defaultText: '`dualstack`',
    help: 'dualstack or ipv4 (default: dualstack)',
    doc: '`dualstack` or `ipv4`. `ipv4` ignores IPv6 entries everywhere (with a warning). In dualstack, IPv6 is skipped with a warning where the host has no IPv6.',
    section: 'install',
  },
  inboundEnabled: {
    key: 'redirect.inbound.enabled',
    fileKind: 'bool',
    flag: '--redirect-inbound',
    bool: true,
    env: env('REDIRECT_INBOUND_ENABLED'),
    annotations: [
      {
        name: 'kuma.io/gateway',
        toValue: (value) => (annotationBool(true)(value) ? false : undefined),
        doc: '`enabled` turns inbound redirection off (a gateway)',
      },
    ],
    parse: v.parseBool,
    fallback: true,
    defaultText: '`true`',
    help: 'redirect inbound traffic to the proxy (default: true)',
    doc: 'Redirect incoming TCP connections to the inbound listener. Turn off for gateway proxies.',
    section: 'install',
  },
  inboundPort: {
    key: 'redirect.inbound.port',
    fileKind: 'scalar',
    flag: '--redirect-inbound-port <port>',
    env: env('REDIRECT_INBOUND_PORT'),
    annotations: [{ name: 'kuma.io/transparent-proxying-inbound-port' }],
    parse: v.parsePort,
    fallback: d.inboundPort as number,
    defaultText: `\`${d.inboundPort}\``,
    help: `inbound listener port (default: ${d.inboundPort})`,
    doc: 'Inbound listener port.',
    section: 'install',
  },
  inboundPortV6: {
    flag: '--redirect-inbound-port-v6 <port>',
    hidden: true,
    parse: v.parsePort,
    fallback: undefined as number | undefined,
    defaultText: '',
    help: 'kumactl 2.2: IPv6 inbound listener port (tpctl uses --redirect-inbound-port for both families)',
    doc: 'kumactl 2.2. Accepted with a warning: IPv6 inbound goes to `--redirect-inbound-port` like IPv4 (Kuma dropped the separate port).',
    section: 'kumactl',
  },
  excludeInboundPorts: {
    key: 'redirect.inbound.excludePorts',
    fileKind: 'list',
    flag: '--exclude-inbound-ports <ports>',
    repeatable: true,
    env: env('REDIRECT_INBOUND_EXCLUDE_PORTS'),
    annotations: [
      { name: 'traffic.kuma.io/exclude-inbound-ports' },
      { name: ANNOTATION_APP_PROBE, toValue: (value) => (value.trim() === '0' || value.trim() === '' ? undefined : value), doc: 'added to the excluded inbound ports (`0`: none)' },
    ],
    parse: v.parsePortList,
    fallback: [],
    defaultText: 'none',
    help: 'inbound ports not redirected: comma list, ranges a-b; repeatable',
    doc: 'Destination ports whose incoming connections go straight to the app: `22,8000-8100` (a space after a comma is fine; an empty item, `80,,443` or `80,`, is refused). Repeatable.',
    section: 'install',
  },
  excludeInboundIps: {
    key: 'redirect.inbound.excludePortsForIPs',
    fileKind: 'list',
    flag: '--exclude-inbound-ips <ips>',
    repeatable: true,
    env: env('REDIRECT_INBOUND_EXCLUDE_PORTS_FOR_IPS'),
    annotations: [{ name: 'traffic.kuma.io/exclude-inbound-ips' }],
    parse: v.parseCidrList,
    fallback: [],
    defaultText: 'none',
    help: 'source addresses/CIDRs (v4 or v6) not redirected inbound; comma list, repeatable',
    doc: 'Source addresses or CIDRs (IPv4 or IPv6, comma-separated) whose connections go straight to the app. Repeatable. Host bits are cleared (`10.1.2.3/8` → `10.0.0.0/8`). IPv4-mapped IPv6 (`::ffff:10.0.0.1`, `::ffff:10.0.0.0/104`) means the IPv4 address or CIDR, in every address setting and engine; a mapped prefix shorter than /96 is refused.',
    section: 'install',
  },
  inboundInsertFirst: {
    key: 'redirect.inbound.insertRedirectInsteadOfAppend',
    fileKind: 'bool',
    flag: '--redirect-inbound-insert-instead-of-append',
    bool: true,
    env: env('REDIRECT_INBOUND_INSERT_REDIRECT_INSTEAD_OF_APPEND'),
    parse: v.parseBool,
    fallback: true,
    defaultText: '',
    help: 'kumactl: insert the PREROUTING jump first (tpctl always does)',
    doc: 'Accepted: tpctl always inserts its jump rules first, ahead of other rules; `false` warns that it still does.',
    section: 'kumactl',
  },
  inboundIncludePorts: {
    key: 'redirect.inbound.includePorts',
    fileKind: 'list',
    env: env('REDIRECT_INBOUND_INCLUDE_PORTS'),
    parse: v.parsePortList,
    fallback: [],
    defaultText: '',
    help: 'kumactl: only these ports are redirected; tpctl accepts only an empty list (use excludePorts)',
    section: 'kumactl',
  },
  inboundExcludePortsForUids: {
    key: 'redirect.inbound.excludePortsForUIDs',
    fileKind: 'stringList',
    env: env('REDIRECT_INBOUND_EXCLUDE_PORTS_FOR_UIDS'),
    envSplit: ';',
    parse: v.parseUidExclusions,
    fallback: [],
    defaultText: '',
    help: 'kumactl: uid exclusions apply to outbound traffic only; tpctl accepts only an empty list',
    section: 'kumactl',
  },
  outboundEnabled: {
    key: 'redirect.outbound.enabled',
    fileKind: 'bool',
    env: env('REDIRECT_OUTBOUND_ENABLED'),
    parse: v.parseBool,
    fallback: true,
    defaultText: '`true`',
    help: 'tpctl always redirects outbound traffic: false is an error',
    section: 'install',
  },
  outboundPort: {
    key: 'redirect.outbound.port',
    fileKind: 'scalar',
    flag: '--redirect-outbound-port <port>',
    env: env('REDIRECT_OUTBOUND_PORT'),
    annotations: [{ name: 'kuma.io/transparent-proxying-outbound-port' }],
    parse: v.parsePort,
    fallback: d.outboundPort as number,
    defaultText: `\`${d.outboundPort}\``,
    help: `outbound listener port (default: ${d.outboundPort})`,
    doc: 'Outbound listener port.',
    section: 'install',
  },
  excludeOutboundPorts: {
    key: 'redirect.outbound.excludePorts',
    fileKind: 'list',
    flag: '--exclude-outbound-ports <ports>',
    repeatable: true,
    env: env('REDIRECT_OUTBOUND_EXCLUDE_PORTS'),
    annotations: [{ name: 'traffic.kuma.io/exclude-outbound-ports' }],
    parse: v.parsePortList,
    fallback: [],
    defaultText: 'none',
    help: 'outbound ports not redirected: comma list, ranges a-b; repeatable',
    doc: 'Destination ports the apps reach directly. Repeatable.',
    section: 'install',
  },
  excludeOutboundIps: {
    key: 'redirect.outbound.excludePortsForIPs',
    fileKind: 'list',
    flag: '--exclude-outbound-ips <ips>',
    repeatable: true,
    env: env('REDIRECT_OUTBOUND_EXCLUDE_PORTS_FOR_IPS'),
    annotations: [{ name: 'traffic.kuma.io/exclude-outbound-ips' }],
    parse: v.parseCidrList,
    fallback: [],
    defaultText: 'none',
    help: 'destination addresses/CIDRs (v4 or v6) not redirected outbound; comma list, repeatable',
    doc: 'Destination addresses or CIDRs left alone. Repeatable.',
    section: 'install',
  },
  excludeOutboundPortsForUids: {
    key: 'redirect.outbound.excludePortsForUIDs',
    fileKind: 'stringList',
    flag: '--exclude-outbound-ports-for-uids <rule>',
    repeatable: true,
    env: env('REDIRECT_OUTBOUND_EXCLUDE_PORTS_FOR_UIDS'),
    envSplit: ';',
    annotations: [{ name: 'traffic.kuma.io/exclude-outbound-ports-for-uids', toValue: (value) => value.split(';'), doc: '`;`-separated rules' }],
    parse: v.parseUidExclusions,
    fallback: [],
    defaultText: 'none',
    help: 'per-uid outbound exclusion [tcp|udp|*:][ports|*:]uid[-uid]; repeatable',
    doc: '`[PROTO:][PORTS:]UIDS`: PROTO is `tcp`, `udp`, `tcp,udp` or `*` (default both); PORTS is a port list with ranges or `*` (default all); UIDS is one uid or one range `a-b`. E.g. `udp:53:106-108`, `80,443:1000`, `1000`. Repeatable. The environment variable takes `;`-separated rules (a rule may hold commas).',
    section: 'install',
  },
  excludeOutboundTcpPortsForUids: {
    flag: '--exclude-outbound-tcp-ports-for-uids <ports:uids>',
    repeatable: true,
    hidden: true,
    parse: perProtocolUidRules('tcp'),
    into: 'excludeOutboundPortsForUids',
    fallback: [] as string[],
    defaultText: '',
    help: 'kumactl 2.2: read as --exclude-outbound-ports-for-uids tcp:PORTS:UID',
    doc: 'kumactl 2.2 (`PORTS:UIDS`, uids a comma list). Read as `--exclude-outbound-ports-for-uids tcp:PORTS:UID`, one rule per uid item.',
    section: 'kumactl',
  },
  excludeOutboundUdpPortsForUids: {
    flag: '--exclude-outbound-udp-ports-for-uids <ports:uids>',
    repeatable: true,
    hidden: true,
    parse: perProtocolUidRules('udp'),
    into: 'excludeOutboundPortsForUids',
    fallback: [] as string[],
    defaultText: '',
    help: 'kumactl 2.2: read as --exclude-outbound-ports-for-uids udp:PORTS:UID',
    doc: 'kumactl 2.2. Read as `--exclude-outbound-ports-for-uids udp:PORTS:UID`, one rule per uid item.',
    section: 'kumactl',
  },
  outboundInsertFirst: {
    key: 'redirect.outbound.insertRedirectInsteadOfAppend',
    fileKind: 'bool',
    flag: '--redirect-outbound-insert-instead-of-append',
    bool: true,
    env: env('REDIRECT_OUTBOUND_INSERT_REDIRECT_INSTEAD_OF_APPEND'),
    parse: v.parseBool,
    fallback: true,
    defaultText: '',
    help: 'kumactl: insert the OUTPUT jump first (tpctl always does)',
    doc: 'As above, for the OUTPUT jump.',
    section: 'kumactl',
  },
  outboundIncludePorts: {
    key: 'redirect.outbound.includePorts',
    fileKind: 'list',
    env: env('REDIRECT_OUTBOUND_INCLUDE_PORTS'),
    parse: v.parsePortList,
    fallback: [],
    defaultText: '',
    help: 'kumactl: as above, outbound',
    section: 'kumactl',
  },
  redirectDns: {
    key: 'redirect.dns.enabled',
    fileKind: 'bool',
    flag: '--redirect-dns',
    bool: true,
    env: env('REDIRECT_DNS_ENABLED'),
    parse: v.parseBool,
    fallback: false,
    defaultText: 'off',
    help: 'redirect DNS queries to the nameservers in resolv.conf to the DNS listener',
    doc: 'Redirect DNS queries (UDP :53) sent to the nameservers listed in the resolv.conf file to the DNS listener. Fails if the file lists no nameserver.',
    section: 'install',
  },
  redirectAllDns: {
    key: 'redirect.dns.captureAll',
    fileKind: 'bool',
    flag: '--redirect-all-dns-traffic',
    bool: true,
    env: env('REDIRECT_DNS_CAPTURE_ALL'),
    annotations: [{ name: 'kuma.io/builtin-dns', toValue: annotationBool(true), doc: '`enabled` = this flag' }],
    parse: v.parseBool,
    fallback: false,
    defaultText: 'off',
    help: 'redirect every DNS query (UDP :53) to the DNS listener',
    doc: 'Redirect every DNS query (UDP :53), whatever the server. Conflicts with `--redirect-dns`.',
    section: 'install',
  },
  dnsPort: {
    key: 'redirect.dns.port',
    fileKind: 'scalar',
    flag: '--redirect-dns-port <port>',
    env: env('REDIRECT_DNS_PORT'),
    annotations: [{ name: 'kuma.io/builtin-dns-port' }],
    parse: v.parsePort,
    fallback: d.dnsPort as number,
    defaultText: `\`${d.dnsPort}\``,
    help: `DNS listener port (default: ${d.dnsPort})`,
    doc: 'DNS listener port (the listener must be bound to 127.0.0.1 / ::1).',
    section: 'install',
  },
  skipDnsConntrackZoneSplit: {
    key: 'redirect.dns.skipConntrackZoneSplit',
    fileKind: 'bool',
    flag: '--skip-dns-conntrack-zone-split',
    bool: true,
    env: env('REDIRECT_DNS_SKIP_CONNTRACK_ZONE_SPLIT'),
    parse: v.parseBool,
    fallback: false,
    defaultText: 'off',
    help: 'iptables: do not put DNS traffic in separate conntrack zones',
    doc: "iptables and nftables: don't put DNS traffic in separate conntrack zones. Ignored (warning) with `--ebpf-enabled`.",
    section: 'install',
  },
  resolvConfPath: {
    key: 'redirect.dns.resolvConfigPath',
    fileKind: 'string',
    flag: '--resolv-conf-path <path>',
    env: env('REDIRECT_DNS_RESOLV_CONFIG_PATH'),
    parse: str,
    fallback: d.resolvConfPath as string,
    defaultText: `\`${d.resolvConfPath}\``,
    help: `resolv.conf whose nameservers --redirect-dns captures (default: ${d.resolvConfPath})`,
    doc: 'The file whose nameservers `--redirect-dns` captures (config key `redirect.dns.resolvConfigPath`, as in kumactl\'s file).',
    section: 'extension',
  },
  dnsUpstreamTargetChain: {
    flag: '--redirect-dns-upstream-target-chain <chain>',
    hidden: true,
    parse: (x: unknown) => v.parsePath(x),
    fallback: undefined as string | undefined,
    defaultText: '',
    help: "kumactl 2.2: where the proxy's upstream DNS queries go (tpctl: always RETURN)",
    doc: "kumactl 2.2, deprecated there. Accepted with a warning: the proxy's own DNS queries are never redirected (kumactl's default `RETURN`).",
    section: 'kumactl',
  },
  vnet: {
    key: 'redirect.vnet.networks',
    fileKind: 'stringList',
    flag: '--vnet <iface:cidr>',
    repeatable: true,
    env: env('REDIRECT_VNET_NETWORKS'),
    envSplit: ',',
    parse: v.parseVnets,
    fallback: [],
    defaultText: 'none',
    help: 'virtual network whose traffic is redirected, e.g. docker0:172.17.0.0/16, br+:172.18.0.0/16; repeatable',
    doc: 'Also redirect traffic arriving from a virtual network, e.g. `docker0:172.17.0.0/16`, `br+:172.18.0.0/16` (`+` = name prefix), `br0:fd00::/64`. The CIDR is required. Repeatable.',
    section: 'install',
  },
  ebpfEnabled: {
    key: 'ebpf.enabled',
    fileKind: 'bool',
    flag: '--ebpf-enabled',
    bool: true,
    env: env('EBPF_ENABLED'),
    annotations: [{ name: 'kuma.io/transparent-proxying-ebpf', toValue: annotationBool(true) }],
    parse: v.parseBool,
    fallback: false,
    defaultText: 'off',
    help: 'use the eBPF engine instead of iptables',
    doc: 'Use the eBPF engine instead of iptables.',
    section: 'ebpf',
    uninstall: 'remove the eBPF install (also done when its state is found)',
  },
  ebpfInstanceIp: {
    key: 'ebpf.instanceIP',
    fileKind: 'list',
    flag: '--ebpf-instance-ip <ip[,ip6]>',
    repeatable: true,
    env: env('EBPF_INSTANCE_IP'),
    parse: v.parseInstanceIps,
    fallback: {} as { ipv4?: string; ipv6?: string },
    defaultText: '— (required)',
    help: "eBPF: this host's address (one IPv4, optionally one IPv6)",
    doc: "This host's own address: one IPv4 and optionally one IPv6, comma-separated. An IPv6-only value is an error with `--ip-family-mode ipv4`.",
    section: 'ebpf',
  },
  ebpfBpffsPath: {
    key: 'ebpf.bpffsPath',
    fileKind: 'string',
    flag: '--ebpf-bpffs-path <dir>',
    env: env('EBPF_BPFFS_PATH'),
    annotations: [{ name: 'kuma.io/transparent-proxying-ebpf-bpf-fs-path' }],
    parse: (x: unknown) => v.parsePath(x, { absolute: true }),
    fallback: d.bpffsPath as string,
    defaultText: `\`${d.bpffsPath}\``,
    help: `eBPF: bpffs directory for pins and state (default: ${d.bpffsPath})`,
    doc: 'bpffs directory where maps, links and the install record are pinned (mounted if needed).',
    section: 'ebpf',
    uninstall: `bpffs directory of the eBPF install (default: ${d.bpffsPath})`,
  },
  ebpfCgroupPath: {
    key: 'ebpf.cgroupPath',
    fileKind: 'string',
    flag: '--ebpf-cgroup-path <dir>',
    env: env('EBPF_CGROUP_PATH'),
    annotations: [{ name: 'kuma.io/transparent-proxying-ebpf-cgroup-path' }],
    parse: (x: unknown) => v.parsePath(x, { absolute: true }),
    fallback: undefined as string | undefined,
    defaultText: 'the cgroup2 root (found in `/proc/self/mountinfo`)',
    help: 'eBPF: cgroup v2 directory to attach to (default: the cgroup2 root)',
    doc: 'cgroup v2 directory the socket programs attach to.',
    section: 'ebpf',
  },
  ebpfTcAttachIface: {
    key: 'ebpf.tcAttachIface',
    fileKind: 'string',
    flag: '--ebpf-tc-attach-iface <iface>',
    env: env('EBPF_TC_ATTACH_IFACE'),
    annotations: [{ name: 'kuma.io/transparent-proxying-ebpf-tc-attach-iface' }],
    parse: v.parseInterfaceName,
    fallback: undefined as string | undefined,
    defaultText: 'the interface holding the instance IP',
    help: 'eBPF: interface for the inbound tc program (default: the one holding the instance IP)',
    doc: 'Interface for the inbound tc program.',
    section: 'ebpf',
  },
  ebpfProgramsSourcePath: {
    key: 'ebpf.programsSourcePath',
    fileKind: 'string',
    flag: '--ebpf-programs-source-path <dir>',
    env: env('EBPF_PROGRAMS_SOURCE_PATH'),
    annotations: [{ name: 'kuma.io/transparent-proxying-ebpf-programs-source-path' }],
    parse: str,
    fallback: undefined as string | undefined,
    defaultText: "the package's `bpf/prebuilt`",
    help: 'eBPF: directory of the *.bpf.o programs (default: bundled bpf/prebuilt)',
    doc: 'Directory holding the `*.bpf.o` programs.',
    section: 'ebpf',
  },
  ebpfInstanceIpEnvVarName: {
    key: 'ebpf.instanceIPEnvVarName',
    fileKind: 'string',
    env: env('EBPF_INSTANCE_IP_ENV_VAR_NAME'),
    annotations: [{ name: 'kuma.io/transparent-proxying-ebpf-instance-ip-env-var-name' }],
    parse: (x: unknown) => {
      const t = v.parsePath(x);
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(t)) throw new ValueError(`${JSON.stringify(t)} is not an environment variable name`, 'expected letters, digits and _');
      return t;
    },
    fallback: undefined as string | undefined,
    defaultText: '',
    help: 'eBPF: the environment variable holding the instance IP, when ebpf.instanceIP is not set (Kuma: INSTANCE_IP)',
    section: 'ebpf',
  },
  iptablesLogs: {
    key: 'log.enabled',
    fileKind: 'bool',
    flag: '--iptables-logs',
    bool: true,
    env: env('LOG_ENABLED'),
    annotations: [{ name: 'traffic.kuma.io/iptables-logs', toValue: annotationBool(false) }],
    parse: v.parseBool,
    fallback: false,
    defaultText: 'off',
    help: 'iptables: log matched packets with the LOG target',
    doc: "iptables and nftables: log matched packets (iptables' LOG target, nft's `log` statement; see `dmesg`).",
    section: 'install',
  },
  logLevel: {
    key: 'log.level',
    fileKind: 'scalar',
    env: env('LOG_LEVEL'),
    parse: v.parseUint,
    fallback: 7,
    defaultText: '`7`',
    help: 'kumactl: the LOG level; tpctl logs at 7 (debug), another value warns',
    section: 'kumactl',
  },
  maxRetries: {
    key: 'retry.maxRetries',
    fileKind: 'scalar',
    flag: '--max-retries <n>',
    env: env('RETRY_MAX_RETRIES'),
    parse: v.parseUint,
    fallback: d.maxRetries as number,
    defaultText: `\`${d.maxRetries}\``,
    help: `install retries after a failed attempt (default: ${d.maxRetries})`,
    doc: 'Retries after a failed install attempt (iptables, while the xtables lock is busy; nftables has no such lock).',
    section: 'install',
  },
  sleepBetweenRetries: {
    key: 'retry.sleepBetweenRetries',
    fileKind: 'scalar',
    flag: '--sleep-between-retries <duration>',
    env: env('RETRY_SLEEP_BETWEEN_RETRIES'),
    parse: v.parseDurationMs,
    fallback: d.sleepBetweenRetriesMs as number,
    defaultText: '`2s`',
    help: 'pause between retries, e.g. 2s, 500ms (default: 2s)',
    doc: 'Pause between retries: `2s`, `500ms`, `1m30s`, or a plain number of seconds.',
    section: 'install',
  },
  wait: {
    key: 'wait',
    fileKind: 'scalar',
    flag: '--wait <seconds>',
    env: env('WAIT'),
    parse: v.parseUint,
    fallback: d.waitSeconds as number,
    defaultText: `\`${d.waitSeconds}\``,
    help: `seconds to wait for the xtables lock (default: ${d.waitSeconds})`,
    doc: 'How long iptables waits for the xtables lock.',
    section: 'install',
  },
  waitInterval: {
    key: 'waitInterval',
    fileKind: 'scalar',
    flag: '--wait-interval <microseconds>',
    env: env('WAIT_INTERVAL'),
    parse: v.parseUint,
    fallback: d.waitIntervalMicros as number,
    defaultText: "iptables' default",
    help: 'xtables lock polling interval (default: iptables default)',
    doc: 'Lock polling interval.',
    section: 'install',
  },
  dropInvalidPackets: {
    key: 'dropInvalidPackets',
    fileKind: 'bool',
    flag: '--drop-invalid-packets',
    bool: true,
    env: env('DROP_INVALID_PACKETS'),
    annotations: [{ name: 'traffic.kuma.io/drop-invalid-packets', toValue: annotationBool(false) }],
    parse: v.parseBool,
    fallback: false,
    defaultText: 'off',
    help: 'iptables: drop packets in conntrack state INVALID',
    doc: 'iptables and nftables: drop packets in conntrack state INVALID (out-of-order packets that would bypass the NAT).',
    section: 'install',
  },
  storeFirewalld: {
    key: 'storeFirewalld',
    fileKind: 'bool',
    flag: '--store-firewalld',
    bool: true,
    env: env('STORE_FIREWALLD'),
    parse: v.parseBool,
    fallback: false,
    defaultText: 'off',
    help: 'iptables: also store the rules in firewalld (/etc/firewalld/direct.xml)',
    doc: 'iptables: also write the rules to `/etc/firewalld/direct.xml`. Ignored (warning) with the nftables and eBPF engines.',
    section: 'install',
  },
  dryRun: {
    key: 'dryRun',
    fileKind: 'bool',
    flag: '--dry-run',
    bool: true,
    env: env('DRY_RUN'),
    parse: v.parseBool,
    fallback: false,
    defaultText: 'off',
    help: 'print what would be installed, change nothing',
    doc: 'Print what would be installed and change nothing: the iptables-restore input (`# IPv4` / `# IPv6` sections), the nft script (`--engine nftables`; `nft -f` reads it as printed) or, with `--ebpf-enabled`, the eBPF plan. Needs no root.',
    section: 'install',
    uninstall: 'print what would be removed, change nothing',
  },
  verbose: {
    key: 'verbose',
    fileKind: 'bool',
    flag: '--verbose',
    bool: true,
    env: env('VERBOSE'),
    parse: v.parseBool,
    fallback: false,
    defaultText: 'off',
    help: 'more output; stack traces on unexpected errors',
    doc: 'More output; stack traces for unexpected errors (also `TPCTL_DEBUG=1`).',
    section: 'install',
    uninstall: 'more output; stack traces on unexpected errors',
  },
  iptablesBackend: {
    key: 'iptablesBackend',
    fileKind: 'string',
    flag: '--iptables-backend <backend>',
    parse: parseBackend,
    fallback: 'auto' as IptablesBackend,
    defaultText: '`auto`',
    help: 'auto, nft or legacy (default: auto: the one already holding rules, else nft)',
    doc: '`auto` uses the backend already holding rules, else nft. Ignored (warning) with the nftables engine.',
    section: 'extension',
    uninstall: 'auto, nft or legacy (default: auto)',
  },
  engine: {
    key: 'engine',
    fileKind: 'string',
    flag: '--engine <engine>',
    env: ['TPCTL_ENGINE'],
    parse: parseEngine,
    fallback: undefined as EngineName | undefined,
    defaultText: '`iptables`; `nftables` on a host with `nft` and no iptables binary (the install says so)',
    help: 'iptables, nftables or ebpf (default: iptables; nftables on a host with nft and no iptables binary; env TPCTL_ENGINE)',
    doc: 'The engine. `--ebpf-enabled` (kumactl\'s flag, config key `ebpf.enabled`) is `--engine ebpf`; when both are given they must agree (`--engine iptables --ebpf-enabled` is an error).',
    section: 'extension',
    uninstall: 'iptables, nftables or ebpf: --engine ebpf = --ebpf-enabled (every install found is removed anyway)',
  },
  iptablesExecutables: {
    key: 'iptablesExecutables',
    fileKind: 'executables',
    flag: '--iptables-executables <name:path,...>',
    env: env('IPTABLES_EXECUTABLES'),
    parse: parseIptablesExecutables,
    fallback: {} as Record<string, string>,
    defaultText: '',
    help: 'kumactl: paths of the iptables tools; tpctl takes the backend (nft or legacy) from their names',
    doc: "kumactl's custom iptables paths (`iptables:/usr/sbin/iptables-legacy,…`; in the file a mapping). tpctl runs the `iptables-{nft,legacy}-{save,restore}` tools on PATH: when every path names one backend (`legacy` or `nft` in the file name) that backend is used, as `--iptables-backend` would; a warning says so, or says they are ignored.",
    section: 'kumactl',
  },
  commentsDisabled: {
    key: 'comments.disabled',
    fileKind: 'bool',
    flag: '--disable-comments',
    bool: true,
    env: env('COMMENTS_DISABLED'),
    parse: v.parseBool,
    fallback: false,
    defaultText: '',
    help: 'kumactl: rules without comments (tpctl keeps them: uninstall and status find its rules by them)',
    doc: 'Accepted; `true` warns: tpctl keeps its rule comments, which carry the ruleset digest that reinstall, uninstall and `status` identify its rules by.',
    section: 'kumactl',
  },
  chainNames: {
    env: env('REDIRECT_INBOUND_CHAIN_NAME', 'REDIRECT_INBOUND_REDIRECT_CHAIN_NAME', 'REDIRECT_OUTBOUND_CHAIN_NAME', 'REDIRECT_OUTBOUND_REDIRECT_CHAIN_NAME'),
    parse: anyValue,
    fallback: undefined,
    defaultText: '',
    help: "kumactl's chain names (environment only); tpctl names its chains TPCTL_*, so they warn",
    section: 'kumactl',
  },
  cniMode: {
    key: 'cniMode',
    fileKind: 'bool',
    env: env('CNI_MODE'),
    parse: v.parseBool,
    fallback: false,
    defaultText: '',
    help: 'kumactl: tpctl installs on a host, not as a CNI plugin; true is an error',
    section: 'kumactl',
  },
  kumaCpIp: {
    flag: '--kuma-cp-ip <ip>',
    hidden: true,
    parse: anyValue,
    fallback: undefined,
    defaultText: '',
    help: 'kumactl 2.2, deprecated there: no effect',
    doc: 'kumactl 2.2, deprecated there ("running a DNS inside the CP is not possible anymore"). Accepted with a warning; no effect.',
    section: 'kumactl',
  },
  transparentProxyEngineV1: {
    flag: '--use-transparent-proxy-engine-v1',
    bool: true,
    hidden: true,
    parse: v.parseBool,
    fallback: false,
    defaultText: '',
    help: "kumactl 2.2: Kuma's old rule generator (tpctl has one iptables rule builder)",
    doc: "kumactl 2.2. Accepted with a warning: tpctl has one iptables rule builder; use `--engine` to choose an engine.",
    section: 'kumactl',
  },
  skipResolvConf: {
    flag: '--skip-resolv-conf',
    bool: true,
    hidden: true,
    parse: anyValue,
    fallback: undefined,
    defaultText: '',
    help: 'deprecated, has no effect',
    doc: 'Deprecated; has no effect (warns). tpctl never edits resolv.conf.',
    section: 'kumactl',
  },
  experimentalEngine: {
    flag: '--experimental-transparent-proxy-engine',
    bool: true,
    hidden: true,
    parse: anyValue,
    fallback: undefined,
    defaultText: '',
    help: 'deprecated, has no effect',
    doc: 'Deprecated; has no effect (warns).',
    section: 'kumactl',
  },
  persist: {
    flag: '--persist',
    parse: anyValue,
    fallback: undefined,
    defaultText: 'off',
    help: 'also write the settings to /etc/tpctl/transparent-proxy.yaml and enable tpctl-transparent-proxy.service, which reapplies them at boot',
    doc: 'Also write the resolved settings to `/etc/tpctl/transparent-proxy.yaml` and enable `tpctl-transparent-proxy.service`, which reapplies them at boot (see *Reboot persistence*). Not a config-file key.',
    section: 'install',
  },
} as const satisfies Record<string, Setting>;

export type SettingId = keyof typeof SETTINGS;
export type ValueOf<S> = S extends Setting<infer T> ? T : never;

export const SETTING_IDS = Object.keys(SETTINGS) as SettingId[];

export function settingOf(id: SettingId): Setting {
  return SETTINGS[id] as Setting;
}

/** `--redirect-inbound-port <port>` → `--redirect-inbound-port`. */
export function longFlag(s: Setting): string | undefined {
  return s.flag?.split(' ')[0];
}

/** The commander attribute of a setting's flag: `--redirect-inbound-port` → `redirectInboundPort`. */
export function flagAttr(s: Setting): string | undefined {
  return longFlag(s)
    ?.slice(2)
    .replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** The setting a config-file key belongs to. */
export function settingForKey(key: string): Setting | undefined {
  return SETTING_IDS.map(settingOf).find((s) => s.key === key);
}

export const ANNOTATION_PREFIXES = ['kuma.io/', 'traffic.kuma.io/'];
