/**
 * Times commands for `make bench` from inside the sandbox, so what is measured is
 * the command alone (spawn to exit), not the nsenter/unshare that places it:
 * run.ts starts this once per sandbox and sends one JSON line per command,
 *   {"argv": ["node", "dist/tpctl.cjs", "--version"]}
 * and reads one JSON line back per command,
 *   {"ms": 61.2, "code": 0, "stdout": "…tail…", "stderr": "…tail…"}.
 * Commands run one at a time, each bounded by a timeout. Exits when stdin ends.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

const TIMEOUT_MS = 300_000;
const TAIL = 2000;

function timed(argv: string[]): Promise<{ ms: number; code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const [file, ...args] = argv;
    const start = process.hrtime.bigint();
    const child = spawn(file!, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout = (stdout + d.toString()).slice(-TAIL)));
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-TAIL)));
    const timer = setTimeout(() => child.kill('SIGKILL'), TIMEOUT_MS);
    child.on('error', (e) => {
      clearTimeout(timer);
      resolve({ ms: 0, code: -1, stdout, stderr: e.message });
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ ms: Number(process.hrtime.bigint() - start) / 1e6, code, stdout, stderr });
    });
  });
}

async function main(): Promise<void> {
  process.stdout.write(`${JSON.stringify({ ready: 'launcher', pid: process.pid })}\n`);
  for await (const line of createInterface({ input: process.stdin })) {
    if (!line.trim()) continue;
    const { argv } = JSON.parse(line) as { argv: string[] };
    process.stdout.write(`${JSON.stringify(await timed(argv))}\n`);
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`launcher: ${(e as Error).message}\n`);
  process.exit(1);
});
