/**
 * A throw-away two-host network for end-to-end tests and the demo:
 *
 *   netns <name>-c ("client host")  ──veth──  netns <name>-m ("mesh host")
 *   10.231.N.1/24, fd00:231:N::1/64           10.231.N.2/24, fd00:231:N::2/64
 *
 * plus a child cgroup v2 directory (only mesh-host processes join it: cgroup hooks
 * are not scoped to a network namespace), a private bpffs mount and a resolv.conf
 * for the mesh host naming the client host as its DNS server.
 *
 * Nothing here touches the root network namespace or the root cgroup. Every
 * command and wait is bounded; destroy() undoes whatever was created, even after a
 * partial creation, and may be called more than once.
 */
import { mkdirSync, mkdtempSync, existsSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mountBpffs } from '../host/mounts.js';
import { mustRun, runCommand, runIn } from './commands.js';
import { findCgroup2Mount, isMountPoint, rmdirCgroup, sleep, unmountOrDetach } from './fs.js';
import { parseSandboxName } from './leftovers.js';
import type { Sandbox, SandboxHost, SandboxOptions } from './types.js';

/**
 * The third octet of the sandbox's addresses, from its name (which holds the pid and
 * a per-sandbox tag): spreads parallel runs over the range without any shared counter.
 */
function subnetOf(name: string): number {
  let h = 0x811c9dc5;
  for (const ch of name) h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193) >>> 0;
  return (h % 250) + 1;
}

/** Builds the sandbox. On any failure, what was already created is removed before the error propagates. */
export async function createSandbox(opts: SandboxOptions): Promise<Sandbox> {
  if (!/^[a-z0-9-]{1,40}$/.test(opts.name)) {
    throw new Error(`sandbox name ${JSON.stringify(opts.name)}: use 1-40 characters of [a-z0-9-]`);
  }
  if (parseSandboxName(opts.name, 'cgroup')?.pid !== process.pid) {
    // Otherwise sweepStaleSandboxes() could neither recognise its leftovers nor tell that it is in use.
    throw new Error(`sandbox name ${JSON.stringify(opts.name)}: must be tpe2e-<tag>-<pid>, tpdemo-<pid> or tpbench-<pid> with this process's pid`);
  }
  const subnet = subnetOf(opts.name);
  const v4 = (host: number): string => `10.231.${subnet}.${host}`;
  const v6 = (host: number): string => `fd00:231:${subnet}::${host}`;
  const cgroupRoot = findCgroup2Mount();
  const created = {
    netns: [] as string[],
    cgroup: undefined as string | undefined,
    bpffsMounted: false,
    tmpDir: undefined as string | undefined,
  };
  const sandbox: Sandbox = {
    name: opts.name,
    subnet,
    netns: { client: `${opts.name}-c`, mesh: `${opts.name}-m` },
    iface: { client: 'veth-c', mesh: 'veth-m' },
    ipv4: { client: v4(1), mesh: v4(2) },
    ipv6: { client: v6(1), mesh: v6(2) },
    cgroupPath: join(cgroupRoot, opts.name),
    bpffsPath: '',
    resolvConfPath: '',
    tmpDir: '',
    v4,
    v6,
    processes: new Set(),
    destroy: async () => {
      await destroySandbox(sandbox, created);
    },
  };
  if (sandbox.cgroupPath === cgroupRoot || !sandbox.cgroupPath.startsWith(`${cgroupRoot}/`)) {
    throw new Error(`sandbox: refusing to use ${sandbox.cgroupPath} (not a child of ${cgroupRoot})`);
  }

  try {
    await removeStaleLeftovers(sandbox);
    for (const ns of [sandbox.netns.client, sandbox.netns.mesh]) {
      await mustRun(['ip', 'netns', 'add', ns]);
      created.netns.push(ns);
    }
    // Both ends are created directly inside their namespaces: nothing ever appears in the root netns.
    await mustRun([
      'ip', 'link', 'add', sandbox.iface.client, 'netns', sandbox.netns.client,
      'type', 'veth', 'peer', 'name', sandbox.iface.mesh, 'netns', sandbox.netns.mesh,
    ]);
    const clientHosts = [1, ...(opts.extraClientHosts ?? [])];
    const batches: Record<SandboxHost, string[]> = {
      client: [
        ...clientHosts.flatMap((h) => [
          `address add ${v4(h)}/24 dev ${sandbox.iface.client}`,
          // Extra IPv6 addresses are deprecated (preferred_lft 0) so source address
          // selection keeps picking ::1, as IPv4 keeps picking its primary .1; they
          // can still be bound explicitly and receive traffic.
          `address add ${v6(h)}/64 dev ${sandbox.iface.client} nodad${h === 1 ? '' : ' preferred_lft 0'}`,
        ]),
      ],
      mesh: [
        `address add ${v4(2)}/24 dev ${sandbox.iface.mesh}`,
        `address add ${v6(2)}/64 dev ${sandbox.iface.mesh} nodad`,
      ],
    };
    for (const host of ['client', 'mesh'] as const) {
      const lines = [...batches[host], `link set lo up`, `link set ${sandbox.iface[host]} up`];
      // Envoy's inbound passthrough binds ::6 (Kuma's IPv6 twin of 127.0.0.6, which lo
      // has anyway); it must be a local address for the proxy to bind it.
      if (host === 'mesh') lines.push('address add ::6/128 dev lo nodad');
      const r = await runIn(sandbox, host, ['ip', '-batch', '-'], { input: `${lines.join('\n')}\n` });
      if (r.exitCode !== 0) throw new Error(`sandbox ${host} addresses: ${r.stderr.trim()}`);
    }

    mkdirSync(sandbox.cgroupPath);
    created.cgroup = sandbox.cgroupPath;

    const tmpDir = mkdtempSync(join(tmpdir(), `${opts.name}-`));
    created.tmpDir = tmpDir;
    const bpffsPath = join(tmpDir, 'bpffs');
    mkdirSync(bpffsPath);
    mountBpffs(bpffsPath);
    created.bpffsMounted = true;
    const resolvConfPath = join(tmpDir, 'resolv.conf');
    writeFileSync(resolvConfPath, `# tpctl sandbox ${opts.name}\nnameserver ${v4(1)}\nnameserver ${v6(1)}\n`);
    Object.assign(sandbox, { bpffsPath, resolvConfPath, tmpDir });

    await waitForLink(sandbox);
    return sandbox;
  } catch (e) {
    await destroySandbox(sandbox, created).catch(() => undefined);
    throw e;
  }
}

/** A previous run that crashed may have left our names behind; they are ours, so remove them. */
async function removeStaleLeftovers(sandbox: Sandbox): Promise<void> {
  for (const ns of [sandbox.netns.client, sandbox.netns.mesh]) {
    if (existsSync(`/run/netns/${ns}`)) await runCommand(['ip', 'netns', 'del', ns]);
  }
  if (existsSync(sandbox.cgroupPath)) {
    try {
      rmdirSync(sandbox.cgroupPath);
    } catch (e) {
      throw new Error(`sandbox: stale cgroup ${sandbox.cgroupPath} cannot be removed (${(e as Error).message}); stop the processes in it`);
    }
  }
}

/** The veth carrier comes up asynchronously; wait (bounded) until both ends report UP. */
async function waitForLink(sandbox: Sandbox): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (Date.now() < deadline) {
    let up = 0;
    for (const host of ['client', 'mesh'] as const) {
      const r = await runIn(sandbox, host, ['ip', '-o', 'link', 'show', 'dev', sandbox.iface[host]]);
      if (/state UP/.test(r.stdout)) up++;
    }
    if (up === 2) return;
    await sleep(50);
  }
  throw new Error(`sandbox ${sandbox.name}: veth link did not come up within 5 s`);
}

async function destroySandbox(
  sandbox: Sandbox,
  created: { netns: string[]; cgroup: string | undefined; bpffsMounted: boolean; tmpDir: string | undefined },
): Promise<void> {
  const problems: string[] = [];
  await Promise.all([...sandbox.processes].map((p) => p.stop()));

  for (const ns of created.netns.splice(0)) {
    const r = await runCommand(['ip', 'netns', 'del', ns]);
    if (r.exitCode !== 0 && existsSync(`/run/netns/${ns}`)) problems.push(`ip netns del ${ns}: ${r.stderr.trim()}`);
  }

  if (created.cgroup) {
    const { problem } = await rmdirCgroup(created.cgroup);
    if (problem) problems.push(problem);
    created.cgroup = undefined;
  }

  if (created.bpffsMounted && sandbox.bpffsPath) {
    const r = await unmountOrDetach(sandbox.bpffsPath);
    if (r.problem) problems.push(r.problem);
    created.bpffsMounted = false;
  }

  if (created.tmpDir) {
    if (!(sandbox.bpffsPath && isMountPoint(sandbox.bpffsPath))) {
      rmSync(created.tmpDir, { recursive: true, force: true });
    } else {
      problems.push(`${created.tmpDir} kept: bpffs still mounted`);
    }
    created.tmpDir = undefined;
  }
  if (problems.length > 0) throw new Error(`sandbox ${sandbox.name} teardown: ${problems.join('; ')}`);
}

