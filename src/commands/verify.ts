/**
 * `verify transparent-proxy`: the installed engine's record says what to expect;
 * src/verify/run.ts proves it with real connections. When the listener ports are
 * taken (the proxy already runs) it says so and falls back to the install's health
 * and counters.
 */
import { requireCapabilities } from '../host/capabilities.js';
import { DECISIONS, type Decision } from '../engine.js';
import { pickProbeUid, verifyTraffic } from '../verify/run.js';
import { ConfigError } from '../errors.js';
import { status, STATUS_ENGINES, type StatusFlags } from './status.js';

export { VERIFY_EXIT } from './exit-codes.js';
import { VERIFY_EXIT } from './exit-codes.js';

export interface VerifyFlags extends StatusFlags {
  uid?: string;
}

export interface VerifyOutcome {
  lines: string[];
  exitCode: number;
}

export async function verify(flags: VerifyFlags = {}): Promise<VerifyOutcome> {
  requireCapabilities('verify transparent-proxy', ['NET_ADMIN', ['BPF', 'SYS_ADMIN']]);
  const report = await status(flags);
  const s = report.engines[0];
  if (!s) return { lines: ['verify: no transparent proxy installed: nothing to verify'], exitCode: VERIFY_EXIT.notInstalled };
  const cfg = s.record?.settings;
  if (!cfg) {
    return { lines: [`verify: the ${s.engine} install has no record of its settings; reinstall it to verify`], exitCode: VERIFY_EXIT.drift };
  }
  const engine = STATUS_ENGINES.find((e) => e.name === s.engine);
  const placement = engine?.verifyPlacement(s) ?? {};
  let uid: number;
  if (flags.uid !== undefined) {
    if (!/^\d+$/.test(flags.uid) || Number(flags.uid) === cfg.kumaDpUser.uid) {
      throw new ConfigError(`--uid: "${flags.uid}" is not an ordinary uid`, { hint: `expected a numeric uid other than the proxy's (${cfg.kumaDpUser.uid})` });
    }
    uid = Number(flags.uid);
  } else {
    uid = pickProbeUid(cfg);
  }
  const label = s.backend ? `${s.engine} (${s.backend})` : s.engine;
  const r = await verifyTraffic(cfg, placement, uid);
  const lines: string[] = [`verify: ${label}, probes as uid ${uid}${placement.cgroupPath ? ` in cgroup ${placement.cgroupPath}` : ''}`];
  if (r.portsTaken) {
    lines.push(`verify: port${r.portsTaken.length > 1 ? 's' : ''} ${r.portsTaken.join(', ')} in use (is the proxy running?): no traffic test; checking the install and its counters instead`);
    for (const f of s.findings) lines.push(`FAIL ${f.problem} (repair: ${f.repair})`);
    if (s.findings.length === 0) lines.push('ok   the install matches its recorded settings');
    const moved = (Object.keys(DECISIONS) as Decision[]).filter((d) => (s.counters[d] ?? 0) > 0);
    lines.push(moved.length ? `counters: ${moved.map((d) => `${d} ${s.counters[d]}`).join(', ')}` : 'counters: no traffic redirected yet');
    return { lines, exitCode: s.findings.length === 0 ? VERIFY_EXIT.passed : VERIFY_EXIT.drift };
  }
  lines.push(...r.checks.map((c) => c.line));
  for (const f of s.findings) lines.push(`note: drift: ${f.problem} (repair: ${f.repair})`);
  lines.push(r.passed ? 'verify: passed' : `verify: FAILED (${r.checks.filter((c) => !c.ok).length} of ${r.checks.length} checks)`);
  return { lines, exitCode: r.passed ? VERIFY_EXIT.passed : VERIFY_EXIT.failed };
}
