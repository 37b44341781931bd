/**
 * Crash safety, for every engine: the real CLI is stopped at step N of an install
 * (or an uninstall) by its step hook (TPCTL_STOP_AT=N: it stops itself with SIGSTOP
 * right after that step's change is made and recorded), killed with SIGKILL, and
 * then both ways out are checked:
 *
 *   uninstall → the host exactly as before the install (cgroup programs, tc filters
 *               and qdiscs, pins, bpffs mounts, directories, iptables-save of both
 *               backends), and the app's traffic goes straight to the remote server;
 *   install   → a complete install (the same state a clean install makes) whose
 *               traffic reaches the proxy with the original destination.
 *
 * The steps are not hard-coded: a traced run (TPCTL_TRACE_STEPS=1) lists them, so
 * steps other engines or programs add are covered too. `make test` runs a sample of
 * the eBPF steps (see SAMPLE_STEPS); `make test-crash` (TPCTL_CRASH_STEPS=all) runs
 * every step of every engine.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  APP_UID, EXTRA_CLIENT_HOSTS, REMOTE_PORTS,
  addForeignIptablesRules, addForeignNftTables, attachForeignCgroupProgram, conformanceFlags, describeCli, distDir, engineFlags, engineState,
  probeTcp, runCli, startCast, uninstallFlags,
} from '../../src/sandbox/harness.js';
import { createSandbox } from '../../src/sandbox/sandbox.js';
import { listTree } from '../../src/sandbox/fs.js';
import { spawnIn } from '../../src/sandbox/processes.js';
import type { Sandbox } from '../../src/sandbox/types.js';
import { hostPort } from '../../src/sandbox/wire.js';
import { readMounts } from '../../src/host/mounts.js';
import { DEFAULT_STATE_DIR, journalPath } from '../../src/ebpf/bpffs-journal.js';
import { STEP_STOPPED_PREFIX, STEP_TRACE_PREFIX } from '../../src/steps.js';
import { ALL_ENGINES } from './suite.js';

const ENGINES = ALL_ENGINES;

/**
 * The steps `make test` kills at when not all are asked for: each kind of state an
 * interrupted run can leave (journal only, mounted bpffs, record without pins, pins
 * without links, some links, tc half done; and the same while removing).
 */
const SAMPLE_STEPS = new Set([
  'bpffs-journal-written', 'bpffs-mounted', 'record-written', 'maps-pinned', 'attached-tp_connect6', 'tc-hook-ready', 'tc-attached',
  'record-removing', 'detached-tp_connect4', 'tc-detached', 'maps-unpinned', 'record-removed', 'bpffs-unmounted',
  'after-ipv4', 'after-ipv6',
]);
const ALL_STEPS = process.env['TPCTL_CRASH_STEPS'] === 'all';

const app = { host: 'mesh' as const, uid: APP_UID };
const cli = join(distDir, 'cli.js');
const STOP_TIMEOUT_MS = 30_000;

interface Step {
  n: number;
  name: string;
}

function tracedSteps(stderr: string): Step[] {
  return stderr
    .split('\n')
    .filter((l) => l.startsWith(`${STEP_TRACE_PREFIX} `))
    .map((l) => {
      const [, n, name] = l.split(' ');
      return { n: Number(n), name: name ?? '' };
    });
}

/** Process ids differ after every load: compare what is attached, not which instance. */
function withoutIds(state: string): string {
  return state
    .replace(/^(\s*"?)\d+(\s+)/gm, '$1N$2')
    .replace(/\bid \d+/g, 'id N')
    .replace(/:\[\d+\]/g, ':[N]')
    .replace(/(cgroupPrograms": ")\d+/g, '$1N')
    .replace(/\\n\d+(\s+)/g, '\\nN$1');
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function processState(pid: number): string | undefined {
  try {
    // /proc/PID/stat: "pid (comm) S ..." — the comm may hold spaces, the state follows the last ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  } catch {
    return undefined;
  }
}

for (const { engine, short } of ENGINES) {
  describe(`crash safety: ${engine}`, () => {
    const ctx: { sb?: Sandbox } = {};
    const sb = (): Sandbox => {
      if (!ctx.sb) throw new Error('sandbox not created (see beforeAll error)');
      return ctx.sb;
    };
    // The eBPF engine mounts a bpffs of its own here (directories, mount and journal are steps too).
    const bpffsPath = (): string => join(sb().tmpDir, 'i7crash', 'bpf');
    const installArgs = (): string[] => [
      'install', 'transparent-proxy', ...conformanceFlags(sb()), ...engineFlags(engine, sb()),
      ...(engine === 'ebpf' ? ['--ebpf-bpffs-path', bpffsPath()] : []),
    ];
    const uninstallArgs = (): string[] => [
      'uninstall', 'transparent-proxy', ...uninstallFlags(engine, sb()),
      ...(engine === 'ebpf' ? ['--ebpf-bpffs-path', bpffsPath()] : []),
    ];

    /** Everything either engine may change, ids masked. */
    async function hostState(): Promise<string> {
      const parts = [await engineState(engine, sb())];
      if (engine === 'ebpf') {
        const root = join(sb().tmpDir, 'i7crash');
        // The kernel's bpf_preload iterators (maps.debug, progs.debug) come with any fresh bpffs: not tpctl's.
        const tree = existsSync(root) ? listTree(root).filter((p) => !/(^|\/)(maps|progs)\.debug$/.test(p)) : ['(absent)'];
        parts.push(`under ${root}: ${tree.join(' ')}`);
        parts.push(`bpf mounts: ${readMounts().filter((m) => m.fsType === 'bpf' && m.mountPoint.startsWith(sb().tmpDir)).map((m) => m.mountPoint).join(' ')}`);
        parts.push(`journal: ${existsSync(journalPath(DEFAULT_STATE_DIR, bpffsPath()))}`);
      }
      return withoutIds(parts.join('\n'));
    }

    async function expectDirect(): Promise<void> {
      const remote = sb().ipv4.client;
      const r = await probeTcp(sb(), app, remote, REMOTE_PORTS.plain);
      expect(r.reply, JSON.stringify(r)).toMatchObject({ via: 'remote', local: hostPort(remote, REMOTE_PORTS.plain) });
    }

    async function expectProxied(): Promise<void> {
      const remote = sb().ipv4.client;
      const r = await probeTcp(sb(), app, remote, REMOTE_PORTS.plain);
      expect(r.reply, JSON.stringify(r)).toMatchObject({ via: 'proxy', listener: 'outbound', origDst: hostPort(remote, REMOTE_PORTS.plain) });
    }

    /** Runs the CLI until it stops itself at step n, then kills it with SIGKILL. */
    async function killAt(args: string[], step: Step): Promise<void> {
      const p = spawnIn(sb(), 'mesh', { argv: [process.execPath, cli, ...args], env: { TPCTL_STOP_AT: String(step.n) } });
      const marker = `${STEP_STOPPED_PREFIX} ${step.n} ${step.name}`;
      const deadline = Date.now() + STOP_TIMEOUT_MS;
      while (!(p.stderr().includes(marker) && processState(p.pid) === 'T')) {
        const code = p.child.exitCode;
        if (code !== null) throw new Error(`${args[0]} exited (${code}) before step ${step.n} ${step.name}: ${p.stderr().trim().slice(-400)}`);
        if (Date.now() > deadline) {
          await p.stop();
          throw new Error(`${args[0]} did not stop at step ${step.n} ${step.name} within ${STOP_TIMEOUT_MS} ms: ${p.stderr().trim().slice(-400)}`);
        }
        await sleep(20);
      }
      process.kill(p.pid, 'SIGKILL');
      expect(await p.waitForExit(10_000)).toBeNull();
    }

    async function cli_(args: string[], what: string): Promise<string> {
      const r = await runCli(sb(), args);
      expect(r.exitCode, `${what}: ${describeCli(r)}`).toBe(0);
      expect(r.stderr, `${what}: no stack trace`).not.toMatch(/^\s+at /m);
      return r.stdout;
    }

    let before = '';
    let installed = '';
    let installSteps: Step[] = [];
    let uninstallSteps: Step[] = [];

    beforeAll(async () => {
      ctx.sb = await createSandbox({ name: `tpe2e-i7crash-${short}-${process.pid}`, extraClientHosts: EXTRA_CLIENT_HOSTS });
      await startCast(ctx.sb);
      if (engine === 'ebpf') await attachForeignCgroupProgram(ctx.sb);
      else if (engine === 'nftables') await addForeignNftTables(ctx.sb);
      else await addForeignIptablesRules(ctx.sb, engine === 'iptables-nft' ? 'nft' : 'legacy');
      before = await hostState();

      // A traced clean install and uninstall: the step lists, and the reference states.
      const inst = await runCli(ctx.sb, installArgs(), { TPCTL_TRACE_STEPS: '1' });
      if (inst.exitCode !== 0) throw new Error(`traced install: ${describeCli(inst)}`);
      installSteps = tracedSteps(inst.stderr);
      installed = await hostState();
      const un = await runCli(ctx.sb, uninstallArgs(), { TPCTL_TRACE_STEPS: '1' });
      if (un.exitCode !== 0) throw new Error(`traced uninstall: ${describeCli(un)}`);
      uninstallSteps = tracedSteps(un.stderr);
    }, 120_000);

    afterAll(async () => {
      if (!ctx.sb) return;
      try {
        await runCli(ctx.sb, uninstallArgs());
      } finally {
        await ctx.sb.destroy();
      }
    });

    it('the clean install and uninstall pass through named steps and restore the host exactly', async () => {
      expect(installSteps.length, 'install steps').toBeGreaterThanOrEqual(engine === 'ebpf' ? 15 : 1);
      expect(uninstallSteps.length, 'uninstall steps').toBeGreaterThanOrEqual(1);
      expect(installed).not.toBe(before);
      expect(await hostState()).toBe(before);
    });

    // An engine none of whose steps is in the sample (a new one) runs them all.
    const chosen = (steps: Step[]): Step[] => {
      const sample = steps.filter((s) => SAMPLE_STEPS.has(s.name));
      return ALL_STEPS || sample.length === 0 ? steps : sample;
    };

    it('install killed at each step: uninstall restores the host exactly, install completes it', async () => {
      const steps = chosen(installSteps);
      expect(steps.length).toBeGreaterThan(0);
      for (const step of steps) {
        const at = `install killed at step ${step.n} (${step.name})`;
        await killAt(installArgs(), step);
        const out = await cli_(uninstallArgs(), `uninstall after ${at}`);
        if (engine === 'ebpf' && step.name !== 'installed') expect(out, `${at}: uninstall says what it found`).toMatch(/interrupted|without an install record/);
        expect(await hostState(), `${at}, then uninstall`).toBe(before);
        await expectDirect();

        await killAt(installArgs(), step);
        const again = await cli_(installArgs(), `install after ${at}`);
        if (engine === 'ebpf' && step.name !== 'installed') expect(again, `${at}: install says what it repaired`).toMatch(/interrupted/);
        expect(await hostState(), `${at}, then install`).toBe(installed);
        await expectProxied();
        await cli_(uninstallArgs(), `clean uninstall after ${at}`);
        expect(await hostState()).toBe(before);
      }
    }, 900_000);

    it('uninstall killed at each step: uninstall finishes, install completes', async () => {
      const steps = chosen(uninstallSteps);
      expect(steps.length).toBeGreaterThan(0);
      for (const step of steps) {
        const at = `uninstall killed at step ${step.n} (${step.name})`;
        await cli_(installArgs(), `install before ${at}`);
        await killAt(uninstallArgs(), step);
        await cli_(uninstallArgs(), `uninstall after ${at}`);
        expect(await hostState(), `${at}, then uninstall`).toBe(before);
        await expectDirect();

        await cli_(installArgs(), `install before ${at} (2)`);
        await killAt(uninstallArgs(), step);
        await cli_(installArgs(), `install after ${at}`);
        expect(await hostState(), `${at}, then install`).toBe(installed);
        await expectProxied();
        await cli_(uninstallArgs(), `clean uninstall after ${at}`);
        expect(await hostState()).toBe(before);
      }
    }, 900_000);
  });
}
