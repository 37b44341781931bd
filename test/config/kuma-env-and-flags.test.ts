/**
 * kumactl parity through the settings table: KUMA_TRANSPARENT_PROXY_* environment
 * variables (precedence between files and flags, one-line errors naming the variable)
 * and kumactl's flags and keys that tpctl handles its own way (one warning each).
 */
import { describe, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config/load.js';
import { resolveConfig, type HostLookups, type ResolveInput } from '../../src/config/resolve.js';
import { SETTING_IDS, settingOf } from '../../src/config/settings.js';
import { staticUserLookup } from '../../src/host/users.js';
import { errorLine } from '../fixtures/errors.js';

const host: HostLookups = { users: staticUserLookup([{ name: 'kuma-dp', uid: 5678 }]), readResolvConf: () => 'nameserver 10.0.0.53\n' };
const resolve = (input: ResolveInput) => resolveConfig(input, host);
const K = 'KUMA_TRANSPARENT_PROXY_';

describe('KUMA_TRANSPARENT_PROXY_* environment variables', () => {
  it('set every kind of setting', () => {
    const { config, warnings } = resolve({
      env: {
        [`${K}KUMA_DP_USER`]: '1234',
        [`${K}IP_FAMILY_MODE`]: 'ipv4',
        [`${K}REDIRECT_INBOUND_ENABLED`]: 'false',
        [`${K}REDIRECT_INBOUND_PORT`]: '16006',
        [`${K}REDIRECT_OUTBOUND_PORT`]: '16001',
        [`${K}REDIRECT_OUTBOUND_EXCLUDE_PORTS`]: '25,8000-8001',
        [`${K}REDIRECT_OUTBOUND_EXCLUDE_PORTS_FOR_IPS`]: '10.0.0.0/8,192.168.1.1',
        [`${K}REDIRECT_OUTBOUND_EXCLUDE_PORTS_FOR_UIDS`]: 'udp:53,54:1000;tcp:*:2000-2001',
        [`${K}REDIRECT_DNS_ENABLED`]: 'true',
        [`${K}REDIRECT_DNS_PORT`]: '16053',
        [`${K}REDIRECT_VNET_NETWORKS`]: 'docker0:172.17.0.0/16,br+:172.18.0.0/16',
        [`${K}LOG_ENABLED`]: 'T',
        [`${K}RETRY_MAX_RETRIES`]: '0',
        [`${K}RETRY_SLEEP_BETWEEN_RETRIES`]: '1m30s',
        [`${K}WAIT`]: '9',
        [`${K}DROP_INVALID_PACKETS`]: '1',
        [`${K}DRY_RUN`]: 'true',
        UNRELATED: 'x',
      },
    });
    expect(warnings).toEqual([]);
    expect(config).toMatchObject({
      kumaDpUser: { uid: 1234 },
      ipFamilyMode: 'ipv4',
      inbound: { enabled: false, port: 16006 },
      outbound: {
        port: 16001,
        excludePorts: [{ from: 25, to: 25 }, { from: 8000, to: 8001 }],
        excludePortsForUids: [
          { protocol: 'udp', ports: [{ from: 53, to: 53 }, { from: 54, to: 54 }], uids: [{ from: 1000, to: 1000 }] },
          { protocol: 'tcp', ports: [], uids: [{ from: 2000, to: 2001 }] },
        ],
      },
      dns: { mode: 'resolvconf', port: 16053, servers: { ipv4: ['10.0.0.53'], ipv6: [] } },
      iptablesLogs: true,
      dropInvalidPackets: true,
      dryRun: true,
      retry: { wait: 9, maxRetries: 0, sleepBetweenRetriesMs: 90_000 },
    });
    expect(config.outbound.excludeIps.map((c) => `${c.address}/${c.prefixLength}`)).toEqual(['10.0.0.0/8', '192.168.1.1/32']);
    expect(config.vnet.map((n) => n.iface)).toEqual(['docker0', 'br+']);
  });

  it('win over config files and lose to flags; an empty variable is unset', () => {
    const file = parseConfigText('tp.yaml', 'redirect: {inbound: {port: 17006}, outbound: {port: 17001}, dns: {port: 17053}}\n');
    const env = { [`${K}REDIRECT_INBOUND_PORT`]: '18006', [`${K}REDIRECT_OUTBOUND_PORT`]: '18001', [`${K}REDIRECT_DNS_PORT`]: '' };
    const { config } = resolve({ files: [file], env, flags: { redirectOutboundPort: '19001' } });
    expect([config.inbound.port, config.outbound.port, config.dns.port]).toEqual([18006, 19001, 17053]);
  });

  it('the eBPF ones, and TPCTL_ENGINE', () => {
    const { config } = resolve({ env: { [`${K}EBPF_ENABLED`]: 'true', [`${K}EBPF_INSTANCE_IP`]: '10.0.0.5', [`${K}EBPF_BPFFS_PATH`]: '/run/x/bpf', [`${K}EBPF_TC_ATTACH_IFACE`]: 'eth1' } });
    expect(config.engine).toBe('ebpf');
    expect(config.ebpf).toMatchObject({ enabled: true, instanceIp: { ipv4: '10.0.0.5' }, bpffsPath: '/run/x/bpf', tcAttachIface: 'eth1' });
    expect(resolve({ env: { TPCTL_ENGINE: 'nftables' } }).config.engine).toBe('nftables');
  });

  it('ebpf.instanceIPEnvVarName reads the address from the variable it names', () => {
    const { config } = resolve({ env: { [`${K}EBPF_ENABLED`]: 'true', [`${K}EBPF_INSTANCE_IP_ENV_VAR_NAME`]: 'POD_IP', POD_IP: '10.1.2.3' } });
    expect(config.ebpf.instanceIp).toEqual({ ipv4: '10.1.2.3' });
    expect(errorLine(() => resolve({ env: { [`${K}EBPF_ENABLED`]: 'true', [`${K}EBPF_INSTANCE_IP_ENV_VAR_NAME`]: 'POD_IP' } }))).toBe(
      `${K}EBPF_INSTANCE_IP_ENV_VAR_NAME (POD_IP): POD_IP is not set (set it to this host's address, or pass --ebpf-instance-ip)`,
    );
    expect(errorLine(() => resolve({ env: { [`${K}EBPF_ENABLED`]: 'true', [`${K}EBPF_INSTANCE_IP_ENV_VAR_NAME`]: 'POD_IP', POD_IP: '127.0.0.1' } }))).toBe(
      `${K}EBPF_INSTANCE_IP_ENV_VAR_NAME (POD_IP): "127.0.0.1" is not a usable instance address (expected the host's own unicast address, not loopback, unspecified or multicast)`,
    );
  });

  it.each<[Record<string, string>, string]>([
    [{ [`${K}REDIRECT_INBOUND_PORT`]: 'x' }, `${K}REDIRECT_INBOUND_PORT: "x" is not a port (expected an integer 1-65535)`],
    [{ [`${K}REDIRECT_DNS_ENABLED`]: 'yes' }, `${K}REDIRECT_DNS_ENABLED: "yes" is not a boolean (expected true or false)`],
    [{ [`${K}IP_FAMILY_MODE`]: 'ipv6' }, `${K}IP_FAMILY_MODE: "ipv6" is not allowed (expected dualstack or ipv4)`],
    [{ [`${K}REDIRECT_OUTBOUND_EXCLUDE_PORTS`]: '80,,443' }, `${K}REDIRECT_OUTBOUND_EXCLUDE_PORTS: "80,,443" has an empty item between commas (expected comma-separated ports or ranges a-b, each 1-65535)`],
    [{ [`${K}RETRY_SLEEP_BETWEEN_RETRIES`]: 'soon' }, `${K}RETRY_SLEEP_BETWEEN_RETRIES: "soon" is not a duration (expected a duration such as 2s, 500ms, 1m30s, or a number of seconds)`],
    [{ [`${K}CNI_MODE`]: 'true' }, `${K}CNI_MODE: not supported by tpctl (tpctl installs on a host, not as a CNI plugin)`],
    [{ [`${K}REDIRECT_OUTBOUND_ENABLED`]: 'false' }, `${K}REDIRECT_OUTBOUND_ENABLED: false is not supported (tpctl always redirects outbound traffic; remove the setting)`],
  ])('a bad value names the variable: %o', (env, line) => {
    expect(errorLine(() => resolve({ env }))).toBe(line);
  });

  it("every variable of Kuma's config struct is in the table", () => {
    // From kumahq/kuma pkg/transparentproxy/config/config.go (envconfig, prefix KUMA_TRANSPARENT_PROXY) and the 2.9 eBPF block.
    const kuma = `KUMA_DP_USER IP_FAMILY_MODE CNI_MODE DROP_INVALID_PACKETS VERBOSE DRY_RUN WAIT WAIT_INTERVAL STORE_FIREWALLD IPTABLES_EXECUTABLES
      LOG_ENABLED LOG_LEVEL RETRY_MAX_RETRIES RETRY_SLEEP_BETWEEN_RETRIES COMMENTS_DISABLED REDIRECT_VNET_NETWORKS
      REDIRECT_DNS_ENABLED REDIRECT_DNS_PORT REDIRECT_DNS_CAPTURE_ALL REDIRECT_DNS_SKIP_CONNTRACK_ZONE_SPLIT REDIRECT_DNS_RESOLV_CONFIG_PATH
      EBPF_ENABLED EBPF_INSTANCE_IP EBPF_INSTANCE_IP_ENV_VAR_NAME EBPF_BPFFS_PATH EBPF_CGROUP_PATH EBPF_PROGRAMS_SOURCE_PATH EBPF_TC_ATTACH_IFACE`.split(/\s+/);
    for (const flow of ['INBOUND', 'OUTBOUND']) {
      for (const f of ['ENABLED', 'PORT', 'CHAIN_NAME', 'REDIRECT_CHAIN_NAME', 'INCLUDE_PORTS', 'EXCLUDE_PORTS', 'EXCLUDE_PORTS_FOR_IPS', 'INSERT_REDIRECT_INSTEAD_OF_APPEND']) {
        kuma.push(`REDIRECT_${flow}_${f}`);
      }
    }
    kuma.push('REDIRECT_OUTBOUND_EXCLUDE_PORTS_FOR_UIDS', 'REDIRECT_INBOUND_EXCLUDE_PORTS_FOR_UIDS');
    const known = new Set(SETTING_IDS.flatMap((id) => settingOf(id).env ?? []));
    expect(kuma.filter((n) => n !== '').map((n) => `${K}${n}`).filter((n) => !known.has(n))).toEqual([]);
  });
});

describe("kumactl's flags and keys that tpctl handles its own way", () => {
  it('a pasted kumactl 2.2 command line resolves, with one warning per flag tpctl treats differently', () => {
    const { config, warnings } = resolve({
      flags: {
        kumaDpUser: '5678',
        redirectInboundPort: '15006',
        redirectInboundPortV6: '15010',
        redirectOutboundPort: '15001',
        excludeOutboundTcpPortsForUids: ['3000-5000:103,104,106-108'],
        excludeOutboundUdpPortsForUids: ['53:106'],
        excludeOutboundPortsForUids: ['tcp:22:7'],
        redirectAllDnsTraffic: true,
        redirectDnsUpstreamTargetChain: 'RETURN',
        kumaCpIp: '10.0.0.1',
        useTransparentProxyEngineV1: true,
        skipResolvConf: true,
      },
    });
    expect(config.outbound.excludePortsForUids).toEqual([
      { protocol: 'tcp', ports: [{ from: 22, to: 22 }], uids: [{ from: 7, to: 7 }] },
      { protocol: 'tcp', ports: [{ from: 3000, to: 5000 }], uids: [{ from: 103, to: 103 }] },
      { protocol: 'tcp', ports: [{ from: 3000, to: 5000 }], uids: [{ from: 104, to: 104 }] },
      { protocol: 'tcp', ports: [{ from: 3000, to: 5000 }], uids: [{ from: 106, to: 108 }] },
      { protocol: 'udp', ports: [{ from: 53, to: 53 }], uids: [{ from: 106, to: 106 }] },
    ]);
    expect(config.dns.mode).toBe('all');
    expect(warnings).toEqual([
      '--skip-resolv-conf is deprecated and has no effect (tpctl never edits resolv.conf)',
      '--kuma-cp-ip is deprecated (kumactl 2.2) and has no effect',
      '--use-transparent-proxy-engine-v1 has no effect: tpctl has one iptables rule builder (choose an engine with --engine)',
      "--redirect-dns-upstream-target-chain is deprecated; RETURN is what tpctl does (the proxy's own DNS queries are never redirected)",
      "--redirect-inbound-port-v6 is kumactl 2.2's: IPv6 inbound connections go to the inbound port 15006, like IPv4 (15010 ignored)",
      "--exclude-outbound-tcp-ports-for-uids is kumactl 2.2's; read as --exclude-outbound-ports-for-uids tcp:PORTS:UID",
      "--exclude-outbound-udp-ports-for-uids is kumactl 2.2's; read as --exclude-outbound-ports-for-uids udp:PORTS:UID",
    ]);
  });

  it('latest kumactl flags: comments, insert-vs-append, iptables executables', () => {
    const r = resolve({
      flags: {
        disableComments: true,
        redirectInboundInsertInsteadOfAppend: true,
        redirectOutboundInsertInsteadOfAppend: 'false',
        iptablesExecutables: 'iptables:/usr/sbin/iptables-legacy,iptables-save:/usr/sbin/iptables-legacy-save,iptables-restore:/usr/sbin/iptables-legacy-restore',
      },
    });
    expect(r.config.iptablesBackend).toBe('legacy');
    expect(r.warnings).toEqual([
      '--disable-comments: tpctl keeps its rule comments (reinstall, uninstall and status identify its rules by them)',
      '--redirect-outbound-insert-instead-of-append=false is ignored: tpctl always inserts its jump rules first',
      "--iptables-executables: tpctl runs the legacy backend's tools from PATH (as --iptables-backend legacy)",
    ]);
    const mixed = resolve({ flags: { iptablesExecutables: 'iptables:/usr/sbin/iptables,ip6tables:/usr/sbin/ip6tables-legacy' } });
    expect(mixed.config.iptablesBackend).toBe('auto');
    expect(mixed.warnings).toEqual(['--iptables-executables is ignored: tpctl runs iptables-{nft,legacy}-{save,restore} from PATH (the paths name no single backend)']);
  });

  it('the same keys in a kumactl config file', () => {
    const file = parseConfigText(
      'kuma.yaml',
      `comments: {disabled: true}
iptablesExecutables: {iptables: /usr/sbin/iptables-nft, iptables-save: /usr/sbin/iptables-nft-save, iptables-restore: /usr/sbin/iptables-nft-restore}
log: {enabled: true, level: 4}
cniMode: false
redirect:
  inbound: {insertRedirectInsteadOfAppend: true, includePorts: [], excludePortsForUIDs: []}
  outbound: {insertRedirectInsteadOfAppend: false, includePorts: ""}
`,
    );
    const r = resolve({ files: [file] });
    expect(r.config.iptablesBackend).toBe('nft');
    expect(r.config.iptablesLogs).toBe(true);
    expect(r.warnings).toEqual([
      'kuma.yaml: comments.disabled: tpctl keeps its rule comments (reinstall, uninstall and status identify its rules by them)',
      'kuma.yaml: redirect.outbound.insertRedirectInsteadOfAppend=false is ignored: tpctl always inserts its jump rules first',
      'kuma.yaml: log.level: tpctl logs at level 7 (debug); 4 is ignored',
      "kuma.yaml: iptablesExecutables: tpctl runs the nft backend's tools from PATH (as --iptables-backend nft)",
    ]);
  });

  it.each<[string, string, string]>([
    ['includePorts', 'redirect: {outbound: {includePorts: "80,443"}}\n', 'k.yaml: redirect.outbound.includePorts: not supported by tpctl (redirecting only listed ports is not supported; use excludePorts)'],
    ['inbound uid rules', 'redirect: {inbound: {excludePortsForUIDs: ["1000"]}}\n', 'k.yaml: redirect.inbound.excludePortsForUIDs: not supported by tpctl (uid exclusions apply to outbound traffic only)'],
    ['a bad executable name', 'iptablesExecutables: {iptables-foo: /x}\n', 'k.yaml: iptablesExecutables.iptables-foo: unknown key (allowed here: iptables, iptables-save, iptables-restore, ip6tables, ip6tables-save, ip6tables-restore)'],
  ])('refused: %s', (_name, text, line) => {
    expect(errorLine(() => resolve({ files: [parseConfigText('k.yaml', text)] }))).toBe(line);
  });

  it.each<[ResolveInput['flags'], string]>([
    [{ excludeOutboundTcpPortsForUids: ['3000'] }, '--exclude-outbound-tcp-ports-for-uids: "3000" is not PORTS:UIDS (expected PORTS:UIDS, e.g. 3000-5000:103,104,106-108)'],
    [{ excludeOutboundUdpPortsForUids: ['53:x'] }, '--exclude-outbound-udp-ports-for-uids: "udp:53:x": "x" is not a uid (expected a uid 0-4294967294 or a range a-b)'],
    [{ iptablesExecutables: 'iptables' }, '--iptables-executables: "iptables" has no path (expected name:path[,name:path…] with names iptables, iptables-save, iptables-restore, ip6tables, ip6tables-save, ip6tables-restore)'],
    [{ redirectInboundPortV6: '0' }, '--redirect-inbound-port-v6: "0" is out of range (expected an integer 1-65535)'],
  ])('bad compatibility flag values: %o', (flags, line) => {
    expect(errorLine(() => resolve({ flags }))).toBe(line);
  });
});
