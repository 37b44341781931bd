/**
 * `install --persist`: the resolved settings as a config file and a systemd unit that
 * reapplies them at boot, enabled; `uninstall` disables and removes both.
 *
 * Ordering: an iptables or nftables install runs before network-pre.target (no
 * interface is up yet, so nothing flows unredirected); an eBPF install needs its tc interface up with
 * the instance IP, so it runs after network-online.target. Both run before
 * kuma-dp.service, so the proxy starts with redirection in place.
 *
 * Every path is under TPCTL_ROOT when set (tests), and `systemctl --root` is used there.
 */
import { existsSync, mkdirSync, readdirSync, renameSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { createRequire } from 'node:module';
import { toConfigFile } from '../config/to-file.js';
import { engineOf, type Logger, type TransparentProxyConfig } from '../config/types.js';
import { CommandError, EngineError } from '../errors.js';
import { hostPath, hostRoot } from '../host/root.js';
import { shippedFile } from '../host/package-file.js';
import { runTool, succeeded } from '../host/run-tool.js';

// yaml loads when a unit is written, not with every command (README: Start-up).
const stringify = (v: unknown): string => (createRequire(import.meta.url)('yaml') as typeof import('yaml')).stringify(v);

export const UNIT_NAME = 'tpctl-transparent-proxy.service';
export const CONFIG_PATH = '/etc/tpctl/transparent-proxy.yaml';
export const UNIT_PATH = `/etc/systemd/system/${UNIT_NAME}`;

/** What the unit runs: the bundled bin when this code runs from it, else dist/cli.js. */
const cliPath = (): string => shippedFile(import.meta.url, '../cli.js', './tpctl.cjs');

export interface BootFiles {
  config: string;
  unit: string;
}

export function bootPaths(env: NodeJS.ProcessEnv = process.env): BootFiles {
  return { config: hostPath(CONFIG_PATH, env), unit: hostPath(UNIT_PATH, env) };
}

/** The config file --persist writes: the resolved settings, minus one-shot switches. */
export function renderBootConfig(cfg: TransparentProxyConfig): string {
  const file = toConfigFile({ ...cfg, dryRun: false, verbose: false });
  return `# Written by tpctl install transparent-proxy --persist; ${UNIT_NAME} applies it at boot.\n# tpctl uninstall transparent-proxy removes it.\n${stringify(file)}`;
}

const quote = (arg: string): string => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(arg) ? arg : `"${arg.replace(/(["\\])/g, '\\$1')}"`);

export function renderUnit(cfg: TransparentProxyConfig, configPath: string, node = process.execPath, cli = cliPath()): string {
  const exec = (args: string[]): string => [node, cli, ...args].map(quote).join(' ');
  const ordering = cfg.ebpf.enabled
    ? ['# eBPF: the tc program needs its interface up with the instance IP.', 'Wants=network-online.target', 'After=network-online.target local-fs.target']
    : [`# ${engineOf(cfg)}: in place before any interface comes up.`, 'Wants=network-pre.target', 'Before=network-pre.target', 'After=local-fs.target'];
  return [
    `# Written by tpctl install transparent-proxy --persist; tpctl uninstall transparent-proxy removes it.`,
    '[Unit]',
    'Description=tpctl transparent proxy (traffic redirection for the service-mesh sidecar)',
    'DefaultDependencies=no',
    ...ordering,
    'Before=kuma-dp.service shutdown.target',
    'Conflicts=shutdown.target',
    '',
    '[Service]',
    'Type=oneshot',
    'RemainAfterExit=yes',
    `ExecStart=${exec(['install', 'transparent-proxy', '--config', configPath])}`,
    `ExecStop=${exec(['uninstall', 'transparent-proxy', '--config', configPath, '--keep-persisted'])}`,
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n');
}

async function systemctl(verb: 'enable' | 'disable', env: NodeJS.ProcessEnv): Promise<void> {
  const root = hostRoot(env);
  const args = [...(root === '/' ? [] : [`--root=${root}`]), verb, UNIT_NAME];
  const r = await runTool('systemctl', args, { timeoutMs: 30_000 });
  if (!succeeded(r)) throw new CommandError(`systemctl ${args.join(' ')}`, (r.stderr || r.stdout || r.failure || `exit code ${r.exitCode}`).trim());
}

function writeRootOnly(path: string, text: string, mode: number): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  const tmp = `${path}.tpctl-${process.pid}.tmp`;
  writeFileSync(tmp, text, { mode });
  renameSync(tmp, path);
}

export async function writeBootPersistence(cfg: TransparentProxyConfig, env: NodeJS.ProcessEnv = process.env): Promise<string[]> {
  const p = bootPaths(env);
  try {
    writeRootOnly(p.config, renderBootConfig(cfg), 0o600);
    // Under TPCTL_ROOT (tests) the unit names the file there, so its commands run as written.
    writeRootOnly(p.unit, renderUnit(cfg, hostRoot(env) === '/' ? CONFIG_PATH : p.config), 0o644);
    await systemctl('enable', env);
  } catch (e) {
    throw new EngineError(`install --persist: ${(e as Error).message}`, {
      cause: e,
      hint: 'the transparent proxy is installed; fix the cause and run install --persist again',
    });
  }
  return [`persisted: settings in ${p.config}, ${UNIT_NAME} enabled (${p.unit})`];
}

/** Disables and removes what --persist wrote; nothing to do when it never ran. */
export async function removeBootPersistence(log: Logger, env: NodeJS.ProcessEnv = process.env): Promise<string[]> {
  const p = bootPaths(env);
  if (!existsSync(p.unit) && !existsSync(p.config)) return [];
  if (existsSync(p.unit)) {
    try {
      await systemctl('disable', env);
    } catch (e) {
      log.warn(`${(e as Error).message}; removing the unit file anyway`);
    }
  }
  rmSync(p.unit, { force: true });
  rmSync(p.config, { force: true });
  const dir = dirname(p.config);
  if (existsSync(dir) && readdirSync(dir).length === 0) rmdirSync(dir);
  return [`boot persistence removed: ${UNIT_NAME} disabled, ${p.unit} and ${p.config} deleted`];
}
