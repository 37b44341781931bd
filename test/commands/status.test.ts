/**
 * The status command over engines given as data (fakes of the StatusEngine interface):
 * exit codes, the renderings, and two engines at once. The real engines are tested
 * end to end in test/e2e/status.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { renderStatusJson, renderStatusPrometheus, renderStatusText, status, STATUS_EXIT } from '../../src/commands/status.js';
import type { EngineStatus, StatusEngine } from '../../src/engine.js';
import { defaultConfig } from '../fixtures/config.js';

function fake(name: string, s: Omit<EngineStatus, 'engine'> | undefined): StatusEngine {
  return { name, status: async () => (s ? { engine: name, ...s } : undefined), verifyPlacement: () => ({}) };
}

const record = { engine: 'fake', tpctlVersion: '0.1.0', installedAt: '2026-12-02T09:00:00.000Z', settings: defaultConfig() };

describe('status', () => {
  it('nothing installed: exit 7, one line, installed 0 for Prometheus', async () => {
    const r = await status({}, [fake('a', undefined)]);
    expect(r.exitCode).toBe(STATUS_EXIT.notInstalled);
    expect(renderStatusText(r)).toEqual(['transparent proxy: not installed']);
    expect(renderStatusPrometheus(r)).toContain('\ntpctl_transparent_proxy_installed 0\n');
  });

  it('healthy: exit 0; counters in one order whatever the engine gave', async () => {
    const r = await status({}, [fake('a', { record, findings: [], counters: { dns_redirected: 2, outbound_redirected: 5 } })]);
    expect(r.exitCode).toBe(0);
    expect(Object.keys(r.engines[0]!.counters)).toEqual(['outbound_redirected', 'dns_redirected']);
    const json = JSON.parse(renderStatusJson(r)) as { engine: string; healthy: boolean; installedAt: string };
    expect(json).toMatchObject({ engine: 'a', healthy: true, installedAt: record.installedAt });
    expect(renderStatusPrometheus(r)).toContain('tpctl_transparent_proxy_decisions_total{engine="a",decision="outbound_redirected"} 5\n');
  });

  it('drift: exit 8 and one line per finding with its repair', async () => {
    const r = await status({}, [fake('a', { record, findings: [{ problem: 'p1', repair: 'r1' }], counters: {} })]);
    expect(r.exitCode).toBe(STATUS_EXIT.drift);
    expect(renderStatusText(r)).toEqual(expect.arrayContaining(['health: DRIFT (1 finding)', '  drift: p1', '    repair: r1']));
  });

  it('two engines installed at once is a finding for both', async () => {
    const r = await status({}, [fake('a', { record, findings: [], counters: {} }), fake('b', { findings: [], counters: {} })]);
    expect(r.exitCode).toBe(STATUS_EXIT.drift);
    for (const e of r.engines) {
      expect(e.findings.map((f) => f.problem)).toEqual(['more than one engine is installed (a, b): connections would be redirected twice']);
    }
  });

  it('a bad --iptables-backend is a config error', async () => {
    await expect(status({ iptablesBackend: 'xt' }, [])).rejects.toThrow(/--iptables-backend: "xt" is not allowed/);
  });
});
