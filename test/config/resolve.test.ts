import { describe, expect, it } from 'vitest';
import { loadConfigFiles, parseConfigText } from '../../src/config/load.js';
import { resolveConfig, resolveUninstallConfig, type HostLookups, type ResolveInput } from '../../src/config/resolve.js';
import { staticUserLookup } from '../../src/host/users.js';
import { errorLine } from '../fixtures/errors.js';

const RESOLV = 'search example.org\nnameserver 10.0.0.53\nnameserver fd00::53\n';

function host(opts: { users?: Array<{ name: string; uid: number }>; resolv?: string | null } = {}): HostLookups {
  return {
    users: staticUserLookup(opts.users ?? [{ name: 'kuma-dp', uid: 5678 }]),
    readResolvConf: (path) => {
      if (opts.resolv === null) throw Object.assign(new Error(`ENOENT: ${path}`), { code: 'ENOENT' });
      return opts.resolv ?? RESOLV;
    },
  };
}

const resolve = (input: ResolveInput, h = host()) => resolveConfig(input, h);
const yamlFile = (source: string, text: string) => parseConfigText(source, text);


describe('defaults', () => {
  it('match kumactl', () => {
    const { config, warnings } = resolve({});
    expect(warnings).toEqual([]);
    expect(config).toMatchObject({
      kumaDpUser: { uid: 5678, name: 'kuma-dp' },
      ipFamilyMode: 'dualstack',
      inbound: { enabled: true, port: 15006, excludePorts: [], excludeIps: [] },
      outbound: { port: 15001, excludePorts: [], excludeIps: [], excludePortsForUids: [] },
      dns: { mode: 'off', port: 15053, resolvConfPath: '/etc/resolv.conf', conntrackZoneSplit: true, servers: { ipv4: [], ipv6: [] } },
      vnet: [],
      dropInvalidPackets: false,
      iptablesLogs: false,
      storeFirewalld: false,
      iptablesBackend: 'auto',
      retry: { wait: 5, waitInterval: 0, maxRetries: 4, sleepBetweenRetriesMs: 2000 },
      ebpf: { enabled: false, instanceIp: {}, bpffsPath: '/run/tpctl/bpf' },
      dryRun: false,
      verbose: false,
    });
    expect(config.ebpf.programsSourcePath).toMatch(/\/bpf\/prebuilt$/);
    expect(config.ebpf.cgroupPath).toBeUndefined();
  });

  it('default user: uid 5678 first, else the name kuma-dp', () => {
    expect(resolve({}, host({ users: [{ name: 'envoy', uid: 5678 }, { name: 'kuma-dp', uid: 1001 }] })).config.kumaDpUser).toEqual({
      uid: 5678,
      name: 'envoy',
    });
    expect(resolve({}, host({ users: [{ name: 'kuma-dp', uid: 1001 }] })).config.kumaDpUser).toEqual({ uid: 1001, name: 'kuma-dp' });
  });
});

describe('merging', () => {
  const fileA = yamlFile(
    'a.yaml',
    `kumaDPUser: "1001"
redirect:
  inbound:
    port: 16006
    excludePorts: [22, "8000-8100"]
  outbound:
    excludePortsForIPs: 10.0.0.0/8,fd00::/8
  dns:
    enabled: true
retry:
  sleepBetweenRetries: 500ms
`,
  );
  const fileB = parseConfigText('b.json', '{"redirect": {"inbound": {"port": 17006}}, "ipFamilyMode": "ipv4", "wait": 9}');

  it('a YAML file sets values; flags win over it', () => {
    const { config } = resolve({ files: [fileA], flags: { redirectInboundPort: '18006' } });
    expect(config.inbound.port).toBe(18006);
    expect(config.inbound.excludePorts).toEqual([
      { from: 22, to: 22 },
      { from: 8000, to: 8100 },
    ]);
    expect(config.kumaDpUser).toEqual({ uid: 1001 });
    expect(config.outbound.excludeIps.map((c) => `${c.address}/${c.prefixLength}`)).toEqual(['10.0.0.0/8', 'fd00::/8']);
    expect(config.dns).toMatchObject({ mode: 'resolvconf', servers: { ipv4: ['10.0.0.53'], ipv6: ['fd00::53'] } });
    expect(config.retry.sleepBetweenRetriesMs).toBe(500);
  });

  it('later files win; a JSON file works like YAML', () => {
    const { config, warnings } = resolve({ files: [fileA, fileB] });
    expect(config.inbound.port).toBe(17006);
    expect(config.retry.wait).toBe(9);
    expect(config.ipFamilyMode).toBe('ipv4');
    // ipv4 mode keeps only IPv4 entries and nameservers.
    expect(config.outbound.excludeIps.map((c) => c.address)).toEqual(['10.0.0.0']);
    expect(config.dns.servers).toEqual({ ipv4: ['10.0.0.53'], ipv6: [] });
    expect(warnings).toEqual(['a.yaml: redirect.outbound.excludePortsForIPs: IPv6 entries ignored with --ip-family-mode ipv4']);
  });

  it('ipv4 mode drops IPv6 virtual networks with a warning', () => {
    const { config, warnings } = resolve({ flags: { ipFamilyMode: 'ipv4', vnet: ['docker0:172.17.0.0/16', 'br0:fd00::/64'] } });
    expect(config.vnet).toEqual([{ iface: 'docker0', cidr: { family: 'ipv4', address: '172.17.0.0', prefixLength: 16 } }]);
    expect(warnings).toEqual(['--vnet: IPv6 entries ignored with --ip-family-mode ipv4']);
  });

  it('a flag can clear a list from a file', () => {
    const { config } = resolve({ files: [fileA], flags: { excludeInboundPorts: '' } });
    expect(config.inbound.excludePorts).toEqual([]);
  });

  it('repeated list flags accumulate', () => {
    const { config } = resolve({
      flags: {
        excludeOutboundPorts: ['80', '443,8080-8081'],
        excludeOutboundIps: ['10.0.0.1', '192.168.0.0/16,fd00::1'],
        excludeOutboundPortsForUids: ['udp:53:1001', '1002'],
        vnet: ['docker0:172.17.0.0/16', 'br+:fd00:1::/64'],
      },
    });
    expect(config.outbound.excludePorts).toHaveLength(3);
    expect(config.outbound.excludeIps).toHaveLength(3);
    expect(config.outbound.excludePortsForUids).toEqual([
      { protocol: 'udp', ports: [{ from: 53, to: 53 }], uids: [{ from: 1001, to: 1001 }] },
      { protocol: 'all', ports: [], uids: [{ from: 1002, to: 1002 }] },
    ]);
    expect(config.vnet.map((n) => n.iface)).toEqual(['docker0', 'br+']);
  });

  it('reads files in order and stdin for "-"', async () => {
    const files = await loadConfigFiles(['one.yaml', '-'], {
      readFile: async (p) => (p === 'one.yaml' ? 'redirect: {outbound: {port: 16001}}\nwait: 1\n' : ''),
      readStdin: async () => 'wait: 2\n',
    });
    expect(files.map((f) => f.source)).toEqual(['one.yaml', '<stdin>']);
    const { config } = resolve({ files });
    expect(config.outbound.port).toBe(16001);
    expect(config.retry.wait).toBe(2);
  });

  it('an empty file is no settings', () => {
    expect(resolve({ files: [yamlFile('empty.yaml', '')] }).config.inbound.port).toBe(15006);
  });

  it('boolean flags take =false', () => {
    const { config } = resolve({ flags: { redirectInbound: 'false', dryRun: true, verbose: 'true' } });
    expect(config.inbound.enabled).toBe(false);
    expect(config.dryRun).toBe(true);
    expect(config.verbose).toBe(true);
  });

  it('a numeric user needs no passwd entry', () => {
    expect(resolve({ flags: { kumaDpUser: '4242' } }, host({ users: [] })).config.kumaDpUser).toEqual({ uid: 4242 });
    expect(resolve({ flags: { kumaDpUser: 'kuma-dp' } }).config.kumaDpUser).toEqual({ uid: 5678, name: 'kuma-dp' });
  });

  it('eBPF settings', () => {
    const { config } = resolve({
      flags: {
        ebpfEnabled: true,
        ebpfInstanceIp: '10.0.0.5,fd00::5',
        ebpfBpffsPath: '/run/x/bpf',
        ebpfCgroupPath: '/sys/fs/cgroup/unified/test',
        ebpfTcAttachIface: 'veth0',
        ebpfProgramsSourcePath: '/opt/bpf',
      },
    });
    expect(config.ebpf).toEqual({
      enabled: true,
      instanceIp: { ipv4: '10.0.0.5', ipv6: 'fd00::5' },
      bpffsPath: '/run/x/bpf',
      cgroupPath: '/sys/fs/cgroup/unified/test',
      tcAttachIface: 'veth0',
      programsSourcePath: '/opt/bpf',
    });
  });

  it('redirect-all-dns-traffic needs no resolv.conf', () => {
    const { config } = resolve({ flags: { redirectAllDnsTraffic: true } }, host({ resolv: null }));
    expect(config.dns.mode).toBe('all');
  });
});

describe('validation messages (one line each)', () => {
  it.each<[string, ResolveInput, string]>([
    ['bad port flag', { flags: { redirectInboundPort: '70000' } }, '--redirect-inbound-port: "70000" is out of range (expected an integer 1-65535)'],
    [
      'bad port in a file',
      { files: [yamlFile('tp.yaml', 'redirect:\n  inbound:\n    port: 70000\n')] },
      'tp.yaml: redirect.inbound.port: "70000" is out of range (expected an integer 1-65535)',
    ],
    [
      'bad port list',
      { flags: { excludeOutboundPorts: '80,9000-8000' } },
      '--exclude-outbound-ports: range "9000-8000" is reversed (expected a-b with a ≤ b)',
    ],
    [
      'bad CIDR',
      { flags: { excludeInboundIps: '10.0.0.0/40' } },
      '--exclude-inbound-ips: "10.0.0.0/40" has an invalid prefix length (expected /0 to /32 for IPv4)',
    ],
    [
      'bad uid rule',
      { flags: { excludeOutboundPortsForUids: ['icmp:1:2'] } },
      '--exclude-outbound-ports-for-uids: "icmp:1:2": unknown protocol "icmp" (expected tcp, udp or *)',
    ],
    [
      'bad vnet',
      { flags: { vnet: ['docker0'] } },
      '--vnet: "docker0" has no CIDR (expected IFACE:CIDR, e.g. docker0:172.17.0.0/16, br+:172.18.0.0/16)',
    ],
    [
      'bad duration',
      { flags: { sleepBetweenRetries: 'soon' } },
      '--sleep-between-retries: "soon" is not a duration (expected a duration such as 2s, 500ms, 1m30s, or a number of seconds)',
    ],
    ['bad ip family', { flags: { ipFamilyMode: 'ipv6' } }, '--ip-family-mode: "ipv6" is not allowed (expected dualstack or ipv4)'],
    ['bad boolean', { flags: { redirectInbound: 'maybe' } }, '--redirect-inbound: "maybe" is not a boolean (expected true or false)'],
    ['bad backend', { flags: { iptablesBackend: 'xt' } }, '--iptables-backend: "xt" is not allowed (expected auto, nft or legacy)'],
    ['bad wait', { flags: { wait: '-1' } }, '--wait: "-1" is not a whole number (expected a whole number ≥ 0)'],
    [
      'unknown key in a file',
      { files: [yamlFile('tp.yaml', 'redirect:\n  inbound:\n    prot: 1\n')] },
      'tp.yaml: redirect.inbound.prot: unknown key (allowed here: enabled, port, excludePorts, excludePortsForIPs, insertRedirectInsteadOfAppend, includePorts, excludePortsForUIDs)',
    ],
    [
      'unknown top-level key',
      { files: [yamlFile('tp.yaml', 'redirct: {}\n')] },
      'tp.yaml: redirct: unknown key (allowed here: kumaDPUser, ipFamilyMode, redirect, ebpf, log, retry, wait, waitInterval, dropInvalidPackets, storeFirewalld, dryRun, verbose, iptablesBackend, engine, iptablesExecutables, comments, cniMode)',
    ],
    [
      'kumactl key tpctl does not support',
      { files: [yamlFile('tp.yaml', 'cniMode: true\n')] },
      'tp.yaml: cniMode: not supported by tpctl (tpctl installs on a host, not as a CNI plugin)',
    ],
    [
      'wrong kind in a file',
      { files: [yamlFile('tp.yaml', 'redirect:\n  dns:\n    enabled: "yes"\n')] },
      'tp.yaml: redirect.dns.enabled: string "yes" is not allowed (expected true or false)',
    ],
    [
      'a section that is not a mapping',
      { files: [yamlFile('tp.yaml', 'redirect: 5\n')] },
      'tp.yaml: redirect: number 5 is not allowed (expected a mapping)',
    ],
    [
      'a file that is not a mapping',
      { files: [yamlFile('tp.yaml', '- 1\n- 2\n')] },
      'tp.yaml: a list at the top level (expected a mapping of settings, e.g. redirect: {inbound: {port: 15006}})',
    ],
    [
      'outbound disabled',
      { files: [yamlFile('tp.yaml', 'redirect: {outbound: {enabled: false}}\n')] },
      'tp.yaml: redirect.outbound.enabled: false is not supported (tpctl always redirects outbound traffic; remove the setting)',
    ],
    [
      'inbound port = outbound port',
      { flags: { redirectInboundPort: '15001' } },
      '--redirect-inbound-port: 15001 is already the default outbound port (the outbound, inbound and DNS listeners need distinct ports)',
    ],
    [
      'dns port = inbound port from a file',
      { flags: { redirectAllDnsTraffic: true }, files: [yamlFile('tp.yaml', 'redirect: {dns: {port: 15006}}\n')] },
      'tp.yaml: redirect.dns.port: 15006 is already the default inbound port (the outbound, inbound and DNS listeners need distinct ports)',
    ],
    [
      'two ports set explicitly',
      { flags: { redirectOutboundPort: '16000', redirectDnsPort: '16000', redirectAllDnsTraffic: true } },
      '--redirect-dns-port: 16000 is already the outbound port set by --redirect-outbound-port (the outbound, inbound and DNS listeners need distinct ports)',
    ],
    [
      'both DNS modes',
      { flags: { redirectDns: true, redirectAllDnsTraffic: true } },
      '--redirect-dns: conflicts with --redirect-all-dns-traffic (pass only one: --redirect-dns captures the resolv.conf nameservers, --redirect-all-dns-traffic every :53)',
    ],
    [
      'eBPF flag without --ebpf-enabled',
      { flags: { ebpfInstanceIp: '10.0.0.5' } },
      '--ebpf-instance-ip: has no effect without --ebpf-enabled (add --ebpf-enabled)',
    ],
    [
      '--ebpf-enabled without an instance IP',
      { flags: { ebpfEnabled: true } },
      "--ebpf-enabled: needs --ebpf-instance-ip (pass this host's address, e.g. --ebpf-instance-ip 10.0.0.5 or 10.0.0.5,fd00::5)",
    ],
    [
      'IPv6-only instance IP in ipv4 mode',
      { flags: { ebpfEnabled: true, ebpfInstanceIp: 'fd00::5', ipFamilyMode: 'ipv4' } },
      '--ebpf-instance-ip: only an IPv6 address is given but --ip-family-mode is ipv4 (pass the IPv4 address of this host)',
    ],
    [
      'relative bpffs path',
      { flags: { ebpfEnabled: true, ebpfInstanceIp: '10.0.0.5', ebpfBpffsPath: 'bpf' } },
      '--ebpf-bpffs-path: "bpf" is not an absolute path (expected a path starting with /)',
    ],
    ['unknown user', { flags: { kumaDpUser: 'x' } }, '--kuma-dp-user: no user "x" on this host (create it or pass a uid)'],
    ['unknown library option', { flags: { redirectInboundPorts: '1' } as never }, '--redirect-inbound-ports: unknown option (see tpctl install transparent-proxy --help)'],
  ])('%s', (_name, input, line) => {
    expect(errorLine(() => resolve(input))).toBe(line);
  });

  it('no default user', () => {
    expect(errorLine(() => resolve({}, host({ users: [] })))).toBe(
      '--kuma-dp-user: not given, and this host has no user with uid 5678 or name "kuma-dp" (create it, e.g. useradd -r -u 5678 kuma-dp, or pass --kuma-dp-user NAME|UID)',
    );
  });

  it('--redirect-dns with a resolv.conf without nameservers names the file', () => {
    expect(errorLine(() => resolve({ flags: { redirectDns: true, resolvConfPath: '/tmp/r.conf' } }, host({ resolv: '# empty\nsearch x\n' })))).toBe(
      '--redirect-dns: /tmp/r.conf lists no nameserver (add a nameserver line, pass --resolv-conf-path, or use --redirect-all-dns-traffic)',
    );
    expect(errorLine(() => resolve({ flags: { redirectDns: true } }, host({ resolv: null })))).toBe(
      '--redirect-dns: cannot read /etc/resolv.conf: ENOENT (pass --resolv-conf-path, or use --redirect-all-dns-traffic)',
    );
    expect(
      errorLine(() => resolve({ flags: { redirectDns: true, ipFamilyMode: 'ipv4' } }, host({ resolv: 'nameserver fd00::53\n' }))),
    ).toBe('--redirect-dns: /etc/resolv.conf lists no IPv4 nameserver (add a nameserver line, pass --resolv-conf-path, or use --redirect-all-dns-traffic)');
  });

  it('config file problems', async () => {
    const readers = {
      readFile: async (p: string): Promise<string> => {
        throw Object.assign(new Error(`ENOENT ${p}`), { code: 'ENOENT' });
      },
      readStdin: async () => '',
    };
    await expect(loadConfigFiles(['missing.yaml'], readers)).rejects.toThrow('--config: cannot read missing.yaml: no such file');
    await expect(loadConfigFiles(['-', '-'], readers)).rejects.toThrow('--config: "-" (standard input) is given more than once');
    expect(errorLine(() => parseConfigText('bad.yaml', 'a: [1,\n'))).toMatch(/^bad\.yaml: not valid YAML or JSON: .+$/);
    expect(errorLine(() => parseConfigText('dup.yaml', 'wait: 1\nwait: 2\n'))).toBe('dup.yaml: wait: key given twice (keep one of them)');
  });

  it('reads JSON with JSON.parse (big exclusion lists), and a broken JSON file still gets the parser message', () => {
    expect(parseConfigText('a.json', ' {"wait": 3, "redirect": {"outbound": {"excludePortsForIPs": ["10.0.0.1/32"]}}}').data).toEqual({
      wait: 3,
      redirect: { outbound: { excludePortsForIPs: ['10.0.0.1/32'] } },
    });
    expect(parseConfigText('flow.yaml', '{wait: 3}').data).toEqual({ wait: 3 }); // YAML flow style, not JSON
    expect(errorLine(() => parseConfigText('bad.json', '{"wait": 3,'))).toMatch(/^bad\.json: not valid YAML or JSON: .+$/);
  });
});

describe('warnings', () => {
  it('deprecated and ignored flags', () => {
    const { config, warnings } = resolve({
      flags: {
        kumaDpUid: '5678',
        skipResolvConf: true,
        ebpfEnabled: true,
        ebpfInstanceIp: '10.0.0.5,fd00::5',
        ipFamilyMode: 'ipv4',
        storeFirewalld: true,
        skipDnsConntrackZoneSplit: true,
        experimentalTransparentProxyEngine: true,
      },
    });
    expect(warnings).toEqual([
      '--kuma-dp-uid is deprecated; use --kuma-dp-user (it takes a uid or a name)',
      '--skip-resolv-conf is deprecated and has no effect (tpctl never edits resolv.conf)',
      '--experimental-transparent-proxy-engine is deprecated and has no effect',
      '--ebpf-instance-ip: IPv6 address fd00::5 ignored with --ip-family-mode ipv4',
      '--store-firewalld is ignored with --ebpf-enabled',
      '--skip-dns-conntrack-zone-split is ignored with --ebpf-enabled',
    ]);
    expect(config.kumaDpUser.uid).toBe(5678);
    expect(config.storeFirewalld).toBe(false);
    expect(config.ebpf.instanceIp).toEqual({ ipv4: '10.0.0.5' });
  });
});

describe('uninstall config', () => {
  it('reads only what uninstall uses', () => {
    const { config } = resolveUninstallConfig({
      flags: { ebpfBpffsPath: '/run/t/bpf', dryRun: true },
      files: [yamlFile('tp.yaml', 'ebpf: {enabled: true}\niptablesBackend: legacy\nredirect: {inbound: {port: 1}}\n')],
    });
    expect(config).toEqual({ dryRun: true, verbose: false, ebpf: { enabled: true, bpffsPath: '/run/t/bpf' }, iptablesBackend: 'legacy' });
  });
  it('refuses install-only flags', () => {
    expect(errorLine(() => resolveUninstallConfig({ flags: { redirectDns: true } as never }))).toBe(
      '--redirect-dns: not an option of this command (allowed: --config, --ebpf-enabled, --ebpf-bpffs-path, --dry-run, --verbose, --iptables-backend, --engine)',
    );
  });
});
