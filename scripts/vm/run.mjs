#!/usr/bin/env node
// Runs test suites inside QEMU VMs, one per kernel of the matrix (make test-vm):
//
//   node scripts/vm/run.mjs --kernels "5.10 6.1 6.12" --suites "test/e2e/conformance.test.ts ..." \
//       [--extra-suites "5.10=test/e2e/bypass.test.ts,..."]
//
// --extra-suites adds suites for one kernel only (CI fits the bypass suite in on the
// kernel that runs beside the two others' shorter runs).
//
// For each kernel: fetch and cache Debian's kernel package (fetch-kernel.sh), build
// the initramfs (build-initramfs.sh), boot it with the host's root shared read-only
// over 9p (the guest writes into a tmpfs overlay; no network device; its own kernel,
// so its own network stack, cgroups and bpffs) and run vitest on the suites there.
// Each VM writes its vitest JSON report, log and exit status to reports/vm/KERNEL/
// through a second, writable 9p share. A VM that does not boot, times out or runs no
// test gets a failure added to its report, so scripts/test-summary.mjs counts it.
//
// Environment: VM_ACCEL=auto|kvm|tcg (auto: KVM when /dev/kvm works, else TCG),
// VM_JOBS (VMs at a time, default: one per core), VM_TIMEOUT (seconds per VM),
// VM_MEMORY (MiB), TPCTL_TEST_TIMEOUT_SCALE (inside the guests; default 2 under KVM,
// 6 under TCG), VM_CACHE (default .cache/vm).
import { spawn } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { countReport, formatCount } from '../report-count.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '../..');

const { values } = parseArgs({
  options: {
    kernels: { type: 'string', default: process.env.KERNELS || '5.10 6.1 6.12' },
    suites: { type: 'string', default: process.env.VM_SUITES || 'test/e2e/conformance.test.ts' },
    'extra-suites': { type: 'string', default: '' },
    engines: { type: 'string', default: process.env.VM_ENGINES || 'ebpf' },
    out: { type: 'string', default: 'reports/vm' },
  },
});
const kernels = values.kernels.split(/\s+/).filter(Boolean);
const suites = values.suites.split(/\s+/).filter(Boolean);
/** KERNEL → suites of that kernel: --suites, plus its --extra-suites not already there. */
const extraSuites = new Map(values['extra-suites'].split(/\s+/).filter(Boolean).map((x) => {
  const [k, list = ''] = x.split('=');
  return [k, list.split(',').filter(Boolean)];
}));
const suitesOf = (series) => [...new Set([...suites, ...(extraSuites.get(series) ?? [])])];
const outRoot = resolve(repo, values.out);
const cache = resolve(repo, process.env.VM_CACHE || '.cache/vm');
const jobs = Math.max(1, Number(process.env.VM_JOBS) || availableParallelism());
const memoryMiB = Number(process.env.VM_MEMORY) || 2048;

function fail(message) {
  console.error(`error: make test-vm: ${message}`);
  process.exit(2);
}
if (process.arch !== 'x64') fail(`the VMs boot Debian amd64 kernels; this host is ${process.arch}`);
if (kernels.length === 0) fail('no kernel given (KERNELS="5.10 6.1 6.12")');
for (const s of [suites, ...extraSuites.values()].flat()) if (!existsSync(resolve(repo, s))) fail(`suite ${s} does not exist`);

const elapsed = (t0) => (Date.now() - t0) / 1000;
function duration(seconds) {
  const total = Math.round(seconds); // round first: 599.6 s is 10m00s, not 9m60s
  const m = Math.floor(total / 60);
  return m ? `${m}m${String(total % 60).padStart(2, '0')}s` : `${total}s`;
}

// The VMs this run started, so an interrupted run (Ctrl-C, CI's kill) takes them along.
const children = new Set();
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    for (const c of children) c.kill('SIGKILL');
    process.exit(130);
  });
}

/** Runs a command to completion; resolves with its exit code and output (stdout+stderr). */
function run(cmd, args, opts = {}) {
  return new Promise((resolveRun) => {
    const child = spawn(cmd, args, { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    children.add(child);
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    let timedOut = false;
    const timer = opts.timeoutMs
      ? setTimeout(() => {
          timedOut = true;
          child.kill('SIGKILL');
        }, opts.timeoutMs)
      : undefined;
    child.on('error', (e) => {
      clearTimeout(timer);
      resolveRun({ code: 127, output: `${output}${e.message}\n`, timedOut });
    });
    child.on('close', (code) => {
      children.delete(child);
      clearTimeout(timer);
      resolveRun({ code: code ?? 128, output, timedOut });
    });
  });
}

/** Fetches (or finds cached) and prepares one kernel; resolves with its files or a failure reason. */
async function prepare(series) {
  for (const step of ['fetch-kernel.sh', 'build-initramfs.sh']) {
    const r = await run('bash', [join(here, step), series, cache]);
    if (r.output.trim()) process.stdout.write(r.output.replace(/^/gm, `vm ${series}: `));
    if (r.code !== 0) return { error: `${step} failed (exit ${r.code})` };
  }
  const dir = join(cache, 'kernels', series);
  return {
    kernel: join(dir, 'vmlinuz'),
    initrd: join(dir, 'initramfs.cpio.gz'),
    release: readFileSync(join(dir, 'release'), 'utf8').trim(),
    modules: join(dir, 'root/lib/modules'),
  };
}

function qemuArgs(accel, k, outDir, extraCmdline = '') {
  return [
    '-n', '10', 'qemu-system-x86_64',
    '-accel', accel, '-cpu', accel === 'kvm' ? 'host' : 'max',
    // One vCPU per VM: under TCG one is faster than two, and two VMs share the 2 cores.
    '-smp', '1', '-m', String(memoryMiB),
    '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot',
    '-serial', `file:${join(outDir, 'console.log')}`,
    '-kernel', k.kernel, '-initrd', k.initrd,
    // no_timer_check: under TCG on a loaded host the kernel's IO-APIC timer check can
    // miss its ticks and panic ("IO-APIC + timer doesn't work", seen with 5.10).
    '-append', `console=ttyS0 panic=-1 random.trust_cpu=on no_timer_check ${extraCmdline}`.trim(),
    '-fsdev', 'local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap',
    '-device', 'virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot',
    '-fsdev', `local,id=vmout,path=${outDir},security_model=none`,
    '-device', 'virtio-9p-pci,fsdev=vmout,mount_tag=vmout',
    '-device', 'virtio-rng-pci',
    // No network device: the guest reaches nothing outside itself.
    '-nic', 'none',
  ];
}

/**
 * KVM when it is there and actually runs a guest: a nested /dev/kvm can exist and
 * still hang every guest (seen on this CI machine), so boot the first kernel with
 * tpvm_probe=1 (init powers off at once) and fall back to TCG when it does not answer.
 */
async function chooseAccel(k) {
  const wanted = process.env.VM_ACCEL || 'auto';
  if (wanted === 'tcg' || wanted === 'kvm') return { accel: wanted, why: `VM_ACCEL=${wanted}` };
  if (wanted !== 'auto') fail(`VM_ACCEL=${wanted}: expected auto, kvm or tcg`);
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
  } catch {
    return { accel: 'tcg', why: 'no usable /dev/kvm' };
  }
  const dir = join(outRoot, '.kvm-probe');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const r = await run('nice', qemuArgs('kvm', k, dir, 'tpvm_probe=1'), { timeoutMs: 20_000 });
  const console_ = existsSync(join(dir, 'console.log')) ? readFileSync(join(dir, 'console.log'), 'utf8') : '';
  rmSync(dir, { recursive: true, force: true });
  if (r.code === 0 && console_.includes('tpvm-init: probe ok')) return { accel: 'kvm', why: '/dev/kvm boots a guest' };
  return { accel: 'tcg', why: r.timedOut ? '/dev/kvm exists but a guest did not boot in 20 s' : `/dev/kvm exists but QEMU failed: ${r.output.trim().split('\n').pop()}` };
}

function shellQuote(s) {
  return `'${String(s).replace(/'/g, `'\\''`)}'`;
}

/** The command the guest runs (chrooted into the overlay root), written to the vmout share. */
function guestScript(series, scale) {
  const env = {
    PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    HOME: '/root',
    CI: 'true',
    TPCTL_TEST_TIMEOUT_SCALE: String(scale),
    TPCTL_TEST_ENGINES: values.engines,
    TPCTL_TEST_VM: series,
  };
  const vitest = ['node', 'node_modules/vitest/vitest.mjs', 'run', '--reporter=default', '--reporter=json',
    '--outputFile.json=/run/vm/vitest.json', ...suitesOf(series)];
  return [
    '# written by scripts/vm/run.mjs; run by scripts/vm/init inside the VM',
    ...Object.entries(env).map(([k, v]) => `export ${k}=${shellQuote(v)}`),
    `cd ${shellQuote(repo)} || exit 1`,
    'ip link set lo up',
    'echo "kernel $(uname -r)" >/run/vm/started',
    `${vitest.map(shellQuote).join(' ')} >/run/vm/test.log 2>&1`,
    'echo $? >/run/vm/exit-code',
    '',
  ].join('\n');
}

/** Adds one failed "test" naming why the VM's run is incomplete, so CI counts it. */
function addFailure(reportFile, series, reason) {
  let report;
  try {
    report = JSON.parse(readFileSync(reportFile, 'utf8'));
  } catch {
    report = { numPassedTests: 0, numFailedTests: 0, numPendingTests: 0, numTodoTests: 0, numTotalTests: 0, testResults: [] };
  }
  report.numFailedTests = (report.numFailedTests ?? 0) + 1;
  report.numTotalTests = (report.numTotalTests ?? 0) + 1;
  report.success = false;
  report.testResults = [...(report.testResults ?? []), {
    name: `vm ${series}`,
    status: 'failed',
    message: reason,
    assertionResults: [{ title: `VM ${series} runs the suites`, fullName: `vm ${series}`, status: 'failed', failureMessages: [reason] }],
  }];
  writeFileSync(reportFile, JSON.stringify(report));
}

function tail(file, lines) {
  if (!existsSync(file)) return '';
  return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
}

async function runVm(series, k, accel, scale, timeoutS) {
  const outDir = join(outRoot, series);
  const report = join(outDir, 'vitest.json');
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });
  const t0 = Date.now();
  if (k.error) {
    addFailure(report, series, `kernel ${series}: ${k.error}`);
    return { series, seconds: 0, release: '?', ...countReport(report), reason: k.error };
  }
  writeFileSync(join(outDir, 'modules-dir'), `${k.modules}\n`);
  writeFileSync(join(outDir, 'run.sh'), guestScript(series, scale));
  console.log(`vm ${series}: booting ${k.release} (${accel}, ${suitesOf(series).join(' ')})`);
  const r = await run('nice', qemuArgs(accel, k, outDir), { timeoutMs: timeoutS * 1000 });
  const seconds = elapsed(t0);
  let reason = '';
  const exitFile = join(outDir, 'exit-code');
  if (r.timedOut) reason = `timed out after ${duration(timeoutS)} (VM_TIMEOUT)`;
  else if (!existsSync(join(outDir, 'started'))) reason = `did not boot (qemu exit ${r.code}): ${r.output.trim().slice(-300)}\n${tail(join(outDir, 'console.log'), 15)}`;
  else if (!existsSync(exitFile)) reason = 'the test run ended without an exit status';
  else if (!existsSync(report)) reason = `vitest exited ${readFileSync(exitFile, 'utf8').trim()} without a report`;
  else if (countReport(report).passed + countReport(report).failed === 0) reason = 'ran no test';
  if (reason) addFailure(report, series, `vm ${series}: ${reason}`);
  return { series, seconds, release: k.release, ...countReport(report), reason };
}

const tAll = Date.now();
mkdirSync(outRoot, { recursive: true });
const prepared = new Map();
for (const series of kernels) prepared.set(series, await prepare(series));
const firstGood = [...prepared.values()].find((k) => !k.error);
const { accel, why } = firstGood ? await chooseAccel(firstGood) : { accel: 'tcg', why: 'no kernel prepared' };
const scale = Number(process.env.TPCTL_TEST_TIMEOUT_SCALE) || (accel === 'kvm' ? 2 : 6);
const timeoutS = Number(process.env.VM_TIMEOUT) || (accel === 'kvm' ? 15 * 60 : 25 * 60);
console.log(`vm: ${accel} (${why}); ${Math.min(jobs, kernels.length)} VM(s) at a time, timeout scale ${scale}, ${duration(timeoutS)} per VM`);

const results = [];
const queue = [...kernels];
await Promise.all(Array.from({ length: Math.min(jobs, kernels.length) }, async () => {
  for (let series = queue.shift(); series; series = queue.shift()) {
    const res = await runVm(series, prepared.get(series), accel, scale, timeoutS);
    results.push(res);
    const line = `vm ${series} (${res.release}, ${accel}): ${formatCount(res)} in ${duration(res.seconds)}`;
    console.log(line);
    if (res.failed) {
      const log = join(outRoot, series, 'test.log');
      if (res.reason) console.log(`vm ${series}: ${res.reason.split('\n')[0]}`);
      if (existsSync(log)) console.log(`vm ${series}: failures in ${relative(repo, log)}; its last lines:\n${tail(log, 40)}`);
    }
  }
}));
results.sort((a, b) => kernels.indexOf(a.series) - kernels.indexOf(b.series));
const summary = results.map((r) => `vm ${r.series} (${r.release}, ${accel}): ${formatCount(r)} in ${duration(r.seconds)}`);
summary.push(`vm: ${kernels.length} kernel(s) in ${duration(elapsed(tAll))}`);
writeFileSync(join(outRoot, 'summary.txt'), `${summary.join('\n')}\n`);
console.log(summary.join('\n'));
process.exit(results.some((r) => r.failed) ? 1 : 0);
