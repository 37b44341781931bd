/**
 * --pod-annotations: the downward-API file format (Go %q quoting, as the kubelet's
 * fieldpath.FormatMap writes it) and Kuma's annotations mapped through the settings table.
 */
import { describe, expect, it } from 'vitest';
import { parseAnnotations, unquoteGo } from '../../src/config/annotations.js';
import { parseConfigText } from '../../src/config/load.js';
import { resolveConfig, type HostLookups, type ResolveInput } from '../../src/config/resolve.js';
import { staticUserLookup } from '../../src/host/users.js';
import { errorLine } from '../fixtures/errors.js';

const host: HostLookups = { users: staticUserLookup([{ name: 'kuma-dp', uid: 5678 }]), readResolvConf: () => 'nameserver 10.0.0.53\n' };
const fromFile = (text: string, rest: Omit<ResolveInput, 'annotations'> = {}) =>
  resolveConfig({ ...rest, annotations: parseAnnotations('/etc/podinfo/annotations', text) }, host);

describe('unquoteGo (strconv.Quote output)', () => {
  it.each<[string, string]>([
    ['"15006"', '15006'],
    ['""', ''],
    ['"a\\"b\\\\c"', 'a"b\\c'],
    ['"line1\\nline2\\ttab\\r\\a\\b\\f\\v"', 'line1\nline2\ttab\r\x07\b\f\v'],
    ['"\\u00e9t\\u00e9 \\U0001F600"', 'été 😀'],
    ['"été 😀"', 'été 😀'], // printable non-ASCII stays literal in %q
    ['"\\x41\\101"', 'AA'],
    ['"\\xc3\\xa9"', 'é'], // bytes that form UTF-8
    ['"{\\"kuma.io/service\\":\\"web\\"}"', '{"kuma.io/service":"web"}'],
  ])('%s', (quoted, text) => {
    expect(unquoteGo(quoted)).toBe(text);
  });

  it.each<[string, string]>([
    ['15006', 'the value is not in double quotes'],
    ['"abc', 'the value is not in double quotes'],
    ['"a"b"', 'an unescaped " inside the value'],
    ['"\\q"', 'unknown escape \\q'],
    ['"\\x4"', '\\x needs 2 hex digits'],
    ['"\\uD800"', 'escape U+d800 is not a character'],
    ['"\\"', 'the value ends in a lone \\'],
  ])('refuses %s', (quoted, message) => {
    expect(() => unquoteGo(quoted)).toThrow(message);
  });
});

describe('parseAnnotations', () => {
  it('reads key="value" lines with their line numbers; blank lines are skipped', () => {
    const a = parseAnnotations('f', 'kuma.io/a="1"\n\nkuma.io/b="x=y"\nother/c="\\"q\\""');
    expect(a.entries).toEqual([
      { name: 'kuma.io/a', value: '1', line: 1 },
      { name: 'kuma.io/b', value: 'x=y', line: 3 },
      { name: 'other/c', value: '"q"', line: 4 },
    ]);
  });

  it.each<[string, string]>([
    ['kuma.io/a=1\n', '--pod-annotations: f:1: kuma.io/a: the value is not in double quotes (expected a value quoted as the kubelet writes it, e.g. "15006")'],
    ['just text\n', '--pod-annotations: f:1: "just text" is not key="value" (expected the downward-API annotations file (fieldRef: metadata.annotations))'],
    ['a="1"\na="2"\n', '--pod-annotations: f:2: a: given twice (keep one of them)'],
  ])('refuses %j', (text, line) => {
    expect(errorLine(() => parseAnnotations('f', text))).toBe(line);
  });
});

describe("Kuma's annotations → settings", () => {
  it('a Kuma-injected pod', () => {
    const { config, warnings } = fromFile(
      [
        'kuma.io/application-probe-proxy-port="9000"',
        'kuma.io/builtin-dns="enabled"',
        'kuma.io/builtin-dns-port="25053"',
        'kuma.io/envoy-admin-port="9901"',
        'kuma.io/mesh="default"',
        'kuma.io/sidecar-injected="true"',
        'kuma.io/sidecar-uid="5678"',
        'kuma.io/transparent-proxying="enabled"',
        'kuma.io/transparent-proxying-inbound-port="25006"',
        'kuma.io/transparent-proxying-ip-family-mode="ipv4"',
        'kuma.io/transparent-proxying-outbound-port="25001"',
        'kuma.io/virtual-probes-port="9000"',
        'kubectl.kubernetes.io/last-applied-configuration="{\\"apiVersion\\":\\"v1\\"}\\n"',
        'traffic.kuma.io/drop-invalid-packets="yes"',
        'traffic.kuma.io/exclude-inbound-ips="10.0.0.1, 10.0.1.0/24"',
        'traffic.kuma.io/exclude-inbound-ports="22,8080"',
        'traffic.kuma.io/exclude-outbound-ips="10.96.0.0/12"',
        'traffic.kuma.io/exclude-outbound-ports="443"',
        'traffic.kuma.io/exclude-outbound-ports-for-uids="udp:53:1000;tcp:80,443:2000-2001"',
        'traffic.kuma.io/iptables-logs="true"',
      ].join('\n'),
    );
    expect(warnings).toEqual([]);
    expect(config).toMatchObject({
      kumaDpUser: { uid: 5678 },
      ipFamilyMode: 'ipv4',
      inbound: { enabled: true, port: 25006, excludePorts: [{ from: 22, to: 22 }, { from: 8080, to: 8080 }, { from: 9000, to: 9000 }] },
      outbound: {
        port: 25001,
        excludePorts: [{ from: 443, to: 443 }],
        excludePortsForUids: [
          { protocol: 'udp', ports: [{ from: 53, to: 53 }], uids: [{ from: 1000, to: 1000 }] },
          { protocol: 'tcp', ports: [{ from: 80, to: 80 }, { from: 443, to: 443 }], uids: [{ from: 2000, to: 2001 }] },
        ],
      },
      dns: { mode: 'all', port: 25053 },
      dropInvalidPackets: true,
      iptablesLogs: true,
    });
    expect(config.inbound.excludeIps.map((c) => `${c.address}/${c.prefixLength}`)).toEqual(['10.0.0.1/32', '10.0.1.0/24']);
    expect(config.outbound.excludeIps.map((c) => `${c.address}/${c.prefixLength}`)).toEqual(['10.96.0.0/12']);
  });

  it('a gateway gets no inbound redirect; probe port 0 adds nothing; builtin-dns disabled is off', () => {
    const { config } = fromFile('kuma.io/gateway="enabled"\nkuma.io/application-probe-proxy-port="0"\nkuma.io/builtin-dns="disabled"\n');
    expect(config.inbound.enabled).toBe(false);
    expect(config.inbound.excludePorts).toEqual([]);
    expect(config.dns.mode).toBe('off');
    expect(fromFile('kuma.io/gateway="disabled"\n').config.inbound.enabled).toBe(true);
  });

  it('the eBPF annotations, with the instance address from the variable Kuma names', () => {
    const { config } = fromFile(
      'kuma.io/transparent-proxying-ebpf="enabled"\nkuma.io/transparent-proxying-ebpf-bpf-fs-path="/run/x/bpf"\nkuma.io/transparent-proxying-ebpf-instance-ip-env-var-name="INSTANCE_IP"\nkuma.io/transparent-proxying-ebpf-tc-attach-iface="eth0"\n',
      { env: { INSTANCE_IP: '10.0.0.7' } },
    );
    expect(config.engine).toBe('ebpf');
    expect(config.ebpf).toMatchObject({ instanceIp: { ipv4: '10.0.0.7' }, bpffsPath: '/run/x/bpf', tcAttachIface: 'eth0' });
  });

  it('precedence: files < annotations < environment < flags', () => {
    const file = parseConfigText('tp.yaml', 'redirect: {inbound: {port: 17006}, outbound: {port: 17001}, dns: {port: 17053}}\nwait: 3\n');
    const { config } = fromFile('kuma.io/transparent-proxying-inbound-port="18006"\nkuma.io/transparent-proxying-outbound-port="18001"\nkuma.io/builtin-dns-port="18053"\n', {
      files: [file],
      env: { KUMA_TRANSPARENT_PROXY_REDIRECT_OUTBOUND_PORT: '19001', KUMA_TRANSPARENT_PROXY_REDIRECT_DNS_PORT: '19053' },
      flags: { redirectDnsPort: '20053' },
    });
    expect([config.inbound.port, config.outbound.port, config.dns.port, config.retry.wait]).toEqual([18006, 19001, 20053, 3]);
  });

  it.each<[string, string]>([
    ['kuma.io/transparent-proxying-inbound-port="abc"', '/etc/podinfo/annotations:1: kuma.io/transparent-proxying-inbound-port: "abc" is not a port (expected an integer 1-65535)'],
    ['a="1"\nkuma.io/builtin-dns="maybe"', '/etc/podinfo/annotations:2: kuma.io/builtin-dns: "maybe" is not allowed (expected enabled, disabled, true, false, yes or no)'],
    ['traffic.kuma.io/drop-invalid-packets="enabled"', '/etc/podinfo/annotations:1: traffic.kuma.io/drop-invalid-packets: "enabled" is not allowed (expected true, false, yes or no)'],
    ['traffic.kuma.io/exclude-outbound-ports-for-uids="tcp:80:x"', '/etc/podinfo/annotations:1: traffic.kuma.io/exclude-outbound-ports-for-uids: "tcp:80:x": "x" is not a uid (expected a uid 0-4294967294 or a range a-b)'],
    ['kuma.io/transparent-proxying-ip-family-mode="ipv6"', '/etc/podinfo/annotations:1: kuma.io/transparent-proxying-ip-family-mode: "ipv6" is not allowed (expected dualstack or ipv4)'],
  ])('a bad value names the annotation, file and line: %s', (text, line) => {
    expect(errorLine(() => fromFile(text))).toBe(line);
  });

  it('unknown kuma.io/ annotations and all others are ignored', () => {
    const { config, warnings } = fromFile('kuma.io/something-new="x"\nfoo="bar"\n');
    expect(warnings).toEqual([]);
    expect(config.inbound.port).toBe(15006);
  });
});
