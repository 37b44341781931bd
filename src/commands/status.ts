/**
 * `status transparent-proxy`: which engine is installed, since when, with which
 * settings, whether the host still holds exactly what tpctl would install for them
 * (drift), and the live decision counters. Read-only.
 *
 * Exit codes: 0 installed and healthy, STATUS_EXIT.notInstalled, STATUS_EXIT.drift.
 */
import { stringify } from 'yaml';
import { DEFAULTS } from '../config/defaults.js';
import { ConfigError } from '../errors.js';
import { DECISIONS, type Decision, type EngineStatus, type StatusEngine, type StatusQuery } from '../engine.js';
import { ebpfStatusEngine } from '../ebpf/status.js';
import { requireCapabilities } from '../host/capabilities.js';
import { iptablesStatusEngine } from '../iptables/status.js';
import { nftablesStatusEngine } from '../nftables/status.js';

/** Every engine status asks, in order. A new engine adds itself here. */
export const STATUS_ENGINES: StatusEngine[] = [ebpfStatusEngine, nftablesStatusEngine, iptablesStatusEngine];

export { STATUS_EXIT } from './exit-codes.js';
import { STATUS_EXIT } from './exit-codes.js';

export interface StatusFlags {
  ebpfBpffsPath?: string;
  iptablesBackend?: string;
}

export interface StatusReport {
  installed: boolean;
  healthy: boolean;
  /** One entry per engine that found an install (normally one). */
  engines: EngineStatus[];
  exitCode: number;
}

export function statusQuery(flags: StatusFlags): StatusQuery {
  const backend = flags.iptablesBackend ?? 'auto';
  if (backend !== 'auto' && backend !== 'nft' && backend !== 'legacy') {
    throw new ConfigError(`--iptables-backend: "${backend}" is not allowed`, { hint: 'expected auto, nft or legacy' });
  }
  return { bpffsPath: flags.ebpfBpffsPath ?? DEFAULTS.bpffsPath, iptablesBackend: backend };
}

export async function status(flags: StatusFlags = {}, engines: StatusEngine[] = STATUS_ENGINES): Promise<StatusReport> {
  const q = statusQuery(flags);
  requireCapabilities('status transparent-proxy', ['NET_ADMIN', ['BPF', 'SYS_ADMIN']]);
  const found: EngineStatus[] = [];
  for (const e of engines) {
    const s = await e.status(q);
    if (!s) continue;
    // Counters in one order for every engine (the order of DECISIONS).
    s.counters = Object.fromEntries((Object.keys(DECISIONS) as Decision[]).filter((d) => s.counters[d] !== undefined).map((d) => [d, s.counters[d]]));
    found.push(s);
  }
  if (found.length > 1) {
    for (const s of found) {
      s.findings.push({
        problem: `more than one engine is installed (${found.map((f) => f.engine).join(', ')}): connections would be redirected twice`,
        repair: 'tpctl uninstall transparent-proxy, then install one engine',
      });
    }
  }
  const installed = found.length > 0;
  const healthy = installed && found.every((s) => s.findings.length === 0);
  const exitCode = !installed ? STATUS_EXIT.notInstalled : healthy ? STATUS_EXIT.healthy : STATUS_EXIT.drift;
  return { installed, healthy, engines: found, exitCode };
}

function engineLabel(s: EngineStatus): string {
  return s.backend ? `${s.engine} (${s.backend})` : s.engine;
}

export function renderStatusText(r: StatusReport): string[] {
  if (!r.installed) return ['transparent proxy: not installed'];
  const out: string[] = [];
  for (const s of r.engines) {
    out.push(`engine: ${engineLabel(s)}`);
    if (s.record) out.push(`installed: ${s.record.installedAt} by tpctl ${s.record.tpctlVersion}`);
    out.push(s.findings.length === 0 ? 'health: ok, matches the recorded settings' : `health: DRIFT (${s.findings.length} finding${s.findings.length === 1 ? '' : 's'})`);
    for (const f of s.findings) out.push(`  drift: ${f.problem}`, `    repair: ${f.repair}`);
    out.push('counters (since install):');
    for (const d of Object.keys(DECISIONS) as Decision[]) {
      if (s.counters[d] !== undefined) out.push(`  ${d.padEnd(26)} ${s.counters[d]}`);
    }
    if (s.settings) out.push('settings:', ...stringify(s.settings).trimEnd().split('\n').map((l) => `  ${l}`));
  }
  return out;
}

export function renderStatusJson(r: StatusReport): string {
  const engines = r.engines.map((s) => ({
    engine: s.engine,
    ...(s.backend ? { backend: s.backend } : {}),
    ...(s.record ? { tpctlVersion: s.record.tpctlVersion, installedAt: s.record.installedAt } : {}),
    healthy: s.findings.length === 0,
    findings: s.findings,
    counters: s.counters,
    ...(s.settings ? { settings: s.settings } : {}),
  }));
  const first = engines[0];
  // The first (normally only) engine's fields at the top level, so `.settings` is one jq step away.
  return JSON.stringify({ installed: r.installed, healthy: r.healthy, exitCode: r.exitCode, ...(first ?? {}), engines }, null, 2);
}

const esc = (v: string): string => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

export function renderStatusPrometheus(r: StatusReport): string {
  const out: string[] = [
    '# HELP tpctl_transparent_proxy_installed 1 when tpctl transparent proxying is installed.',
    '# TYPE tpctl_transparent_proxy_installed gauge',
  ];
  if (!r.installed) out.push('tpctl_transparent_proxy_installed 0');
  for (const s of r.engines) out.push(`tpctl_transparent_proxy_installed{engine="${esc(s.engine)}",backend="${esc(s.backend ?? '')}"} 1`);
  out.push('# HELP tpctl_transparent_proxy_drift_findings Differences from what tpctl would install for the recorded settings.', '# TYPE tpctl_transparent_proxy_drift_findings gauge');
  for (const s of r.engines) out.push(`tpctl_transparent_proxy_drift_findings{engine="${esc(s.engine)}"} ${s.findings.length}`);
  out.push('# HELP tpctl_transparent_proxy_decisions_total Connections (TCP) and flows or datagrams (DNS) per redirection decision since install.', '# TYPE tpctl_transparent_proxy_decisions_total counter');
  for (const s of r.engines) {
    for (const d of Object.keys(DECISIONS) as Decision[]) {
      if (s.counters[d] !== undefined) out.push(`tpctl_transparent_proxy_decisions_total{engine="${esc(s.engine)}",decision="${d}"} ${s.counters[d]}`);
    }
  }
  return `${out.join('\n')}\n`;
}

/** The recorded settings as YAML, for `status --settings | tpctl install transparent-proxy --config -`. */
export function renderStatusSettings(r: StatusReport): string | undefined {
  const s = r.engines.find((e) => e.settings);
  return s?.settings ? stringify(s.settings) : undefined;
}
