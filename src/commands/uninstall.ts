/**
 * `uninstall transparent-proxy`: removes what install added. eBPF state is removed
 * when asked (--ebpf-enabled) or when a state record exists at the bpffs path, so a
 * plain `uninstall` cleans up whichever engine was used; the nftables and iptables
 * cleanups always run and are no-ops when no table / chain of tpctl's exists.
 */
import { hasEbpfInstall, uninstallEbpf } from '../ebpf/index.js';
import type { EngineResult } from '../engine.js';
import { requireCapabilities } from '../host/capabilities.js';
import { withHostLock } from '../host/lock.js';
import { uninstallIptables } from '../iptables/index.js';
import { uninstallNftables } from '../nftables/index.js';
import { defaultConfigReaders, loadConfigFiles } from '../config/load.js';
import { resolveUninstallConfig } from '../config/resolve.js';
import type { RawUninstallFlags } from '../config/schema.js';
import { silentLogger, type Logger, type UninstallConfig } from '../config/types.js';
import { configPaths, type CommandOptions, type CommandResult } from './install.js';
import { removeBootPersistence } from '../persist/boot.js';
import { Steps } from '../steps.js';

export async function uninstall(flags: RawUninstallFlags = {}, opts: CommandOptions = {}): Promise<CommandResult> {
  const log = opts.logger ?? silentLogger;
  const files = await loadConfigFiles(configPaths(flags.config), opts.readers ?? defaultConfigReaders);
  const { config, warnings } = resolveUninstallConfig({ flags, files, env: opts.env });
  for (const w of warnings) log.warn(w);
  const result = await uninstallResolved(config, log, opts.steps);
  if (!config.dryRun && !opts.keepPersisted) {
    const removed = await removeBootPersistence(log);
    if (removed.length > 0) result.changed = true;
    result.lines.push(...removed);
  }
  return { ...result, dryRun: config.dryRun };
}

export async function uninstallResolved(cfg: UninstallConfig, log: Logger = silentLogger, steps = new Steps()): Promise<EngineResult> {
  if (cfg.dryRun) return uninstallEngines(cfg, log, steps);
  requireCapabilities('uninstall transparent-proxy', ['NET_ADMIN']);
  return withHostLock('uninstall transparent-proxy', () => uninstallEngines(cfg, log, steps));
}

async function uninstallEngines(cfg: UninstallConfig, log: Logger, steps: Steps): Promise<EngineResult> {
  const lines: string[] = [];
  let changed = false;
  if (cfg.ebpf.enabled || hasEbpfInstall(cfg.ebpf.bpffsPath)) {
    const r = await uninstallEbpf({ ...cfg, ebpf: { ...cfg.ebpf, enabled: true } }, log, { steps });
    lines.push(...r.lines);
    changed ||= r.changed;
  }
  for (const r of [await uninstallNftables(cfg, log, { steps }), await uninstallIptables(cfg, log, { steps })]) {
    lines.push(...r.lines);
    changed ||= r.changed;
  }
  return { changed, lines };
}
