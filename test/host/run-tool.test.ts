import { describe, expect, it } from 'vitest';
import { runTool, succeeded } from '../../src/host/run-tool.js';

describe('runTool', () => {
  it('collects stdout and stderr and the exit code', async () => {
    const r = await runTool('sh', ['-c', 'echo out; echo err >&2; exit 3']);
    expect(r).toEqual({ exitCode: 3, stdout: 'out\n', stderr: 'err\n' });
    expect(succeeded(r)).toBe(false);
  });

  it('feeds stdin and keeps large output whole', async () => {
    const input = 'x'.repeat(3_000_000);
    const r = await runTool('cat', [], { input });
    expect(succeeded(r)).toBe(true);
    expect(r.stdout.length).toBe(input.length);
  });

  it('a tool that stops reading its input early is judged by its exit code (no EPIPE failure)', async () => {
    const r = await runTool('sh', ['-c', 'head -c 1 >/dev/null; exit 0'], { input: 'y'.repeat(5_000_000) });
    expect(r).toMatchObject({ exitCode: 0 });
    expect(r.failure).toBeUndefined();
  });

  it('a missing tool fails with the spawn error, not an exit code', async () => {
    const r = await runTool('/nonexistent/tpctl-tool', []);
    expect(r.exitCode).toBeUndefined();
    expect(r.failure).toMatch(/ENOENT/);
    expect(succeeded(r)).toBe(false);
  });

  it('kills a tool that outlives its time bound', async () => {
    const started = Date.now();
    const r = await runTool('sleep', ['30'], { timeoutMs: 200 });
    expect(r.failure).toMatch(/timed out after 200 ms/);
    expect(Date.now() - started).toBeLessThan(20_000);
  });
});
