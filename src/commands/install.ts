/**
 * `install transparent-proxy`: flags and config files → resolved config → engine.
 * With --dry-run it only renders what the engine would install (no root needed,
 * nothing touched).
 */
import { describeEbpfPlan } from '../ebpf/spec.js';
import type { EngineResult } from '../engine.js';
import { requireCapabilities } from '../host/capabilities.js';
import { withHostLock } from '../host/lock.js';
import { renderIptablesRuleset } from '../iptables/index.js';
import { renderNftablesScript } from '../nftables/index.js';
import { ConfigError, PreflightError } from '../errors.js';
import { defaultConfigReaders, loadConfigFiles, type ConfigReaders } from '../config/load.js';
import { parseAnnotations } from '../config/annotations.js';
import { resolveConfig, type HostLookups } from '../config/resolve.js';
import { systemHostLookups } from '../host/lookups.js';
import type { RawFlags } from '../config/schema.js';
import { engineOf, silentLogger, type Logger, type TransparentProxyConfig } from '../config/types.js';
import { writeBootPersistence } from '../persist/boot.js';
import { Steps } from '../steps.js';

export interface CommandOptions {
  logger?: Logger;
  /** User and resolv.conf lookups; the host's by default. */
  host?: HostLookups;
  /** How `--config` files and `-` (stdin) are read. */
  readers?: ConfigReaders;
  /** Environment variables that set options (TPCTL_ENGINE); the CLI passes its own. */
  env?: Record<string, string | undefined>;
  /** install: also write the settings and a boot unit (--persist). */
  persist?: boolean;
  /** uninstall: keep what --persist wrote (the boot unit's own ExecStop). */
  keepPersisted?: boolean;
  /** Step hooks for crash-safety tests (the CLI builds them from its environment). */
  steps?: Steps;
}

/** What a command did, and whether it was a dry run (which may be set in a config file, not only by flag). */
export interface CommandResult extends EngineResult {
  dryRun: boolean;
}

/** --config values: each a path, `-`, or (as the latest kumactl takes) a comma-separated list of them. */
export function configPaths(config: RawFlags['config']): string[] {
  if (config === undefined) return [];
  const values = Array.isArray(config) ? config : [config];
  return values.flatMap((v) => (v.includes(',') ? v.split(',').map((p) => p.trim()).filter((p) => p !== '') : [v]));
}

/** Resolves flags + config files and installs (or, with dryRun, renders) transparent proxying. */
export async function install(flags: RawFlags = {}, opts: CommandOptions = {}): Promise<CommandResult> {
  const log = opts.logger ?? silentLogger;
  const readers = opts.readers ?? defaultConfigReaders;
  const files = await loadConfigFiles(configPaths(flags.config), readers);
  const annotations = flags.podAnnotations === undefined ? undefined : await loadPodAnnotations(String(flags.podAnnotations), readers);
  const { config, warnings, notes = [] } = resolveConfig({ flags, files, annotations, env: opts.env }, opts.host ?? systemHostLookups());
  for (const w of warnings) log.warn(w);
  const result = await installResolved(config, log, opts.steps);
  if (opts.persist && !config.dryRun) result.lines.push(...(await writeBootPersistence(config)));
  // A note in a dry run is a comment, so the printed nft script stays one that `nft -f` reads.
  const noteLines = notes.map((n) => (config.dryRun ? `# ${n}` : n));
  return { ...result, lines: [...noteLines, ...result.lines], dryRun: config.dryRun };
}

/** Reads and parses the --pod-annotations file. */
async function loadPodAnnotations(path: string, readers: ConfigReaders) {
  let text: string;
  try {
    text = await readers.readFile(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ConfigError(`--pod-annotations: cannot read ${path}: ${code === 'ENOENT' ? 'no such file' : (code ?? (e as Error).message)}`, {
      hint: 'mount the downward-API volume with the metadata.annotations field',
    });
  }
  return parseAnnotations(path, text);
}

/** The text --dry-run prints: the iptables-restore input per family, the nft script, or the eBPF plan. */
export function renderDryRun(cfg: TransparentProxyConfig): string {
  const engine = engineOf(cfg);
  if (engine === 'ebpf') return describeEbpfPlan(cfg);
  if (engine === 'nftables') return renderNftablesScript(cfg).trimEnd();
  const rules = renderIptablesRuleset(cfg);
  const parts = ['# IPv4', rules.ipv4.trimEnd()];
  if (rules.ipv6 !== undefined) parts.push('# IPv6', rules.ipv6.trimEnd());
  return parts.join('\n');
}

/** Installs an already resolved configuration with the engine it selects. */
export async function installResolved(cfg: TransparentProxyConfig, log: Logger = silentLogger, steps = new Steps()): Promise<EngineResult> {
  if (cfg.dryRun) return { changed: false, lines: renderDryRun(cfg).split('\n') };
  const engine = engineOf(cfg);
  requireCapabilities('install transparent-proxy', engine === 'ebpf' ? ['NET_ADMIN', ['BPF', 'SYS_ADMIN']] : ['NET_ADMIN']);
  // The engines load here, not at import: a dry run (and --help) never pays for
  // libbpf or koffi.
  const [{ hasEbpfInstall, installEbpf }, { backendHoldingTpctl, installIptables }, { hasNftablesInstall, installNftables }] = await Promise.all([
    import('../ebpf/index.js'),
    import('../iptables/index.js'),
    import('../nftables/index.js'),
  ]);
  return withHostLock('install transparent-proxy', async () => {
    if (engine !== 'ebpf' && hasEbpfInstall(cfg.ebpf.bpffsPath)) {
      throw engineConflict(`an eBPF transparent proxy is installed (state in ${cfg.ebpf.bpffsPath})`);
    }
    // Both checks at once: their tools' run times overlap instead of adding up.
    const [backend, tables] = await Promise.all([
      engine !== 'iptables' ? backendHoldingTpctl() : undefined,
      engine !== 'nftables' ? hasNftablesInstall() : [],
    ]);
    if (backend) throw engineConflict(`tpctl's iptables rules are installed (iptables-${backend})`);
    if (tables.length > 0) throw engineConflict(`tpctl's nftables table is installed (${tables.map((f) => `${f} tpctl`).join(', ')})`);
    if (engine === 'ebpf') return installEbpf(cfg, log, { steps });
    if (engine === 'nftables') return installNftables(cfg, log, { steps });
    return installIptables(cfg, log, { steps });
  });
}

/**
 * Two engines at once would redirect twice (tc steering a SYN that nat PREROUTING
 * then rewrites), so switching engines is an explicit uninstall + install.
 */
function engineConflict(what: string): PreflightError {
  return new PreflightError(`install transparent-proxy: ${what}`, {
    hint: 'the two engines cannot run together: run `tpctl uninstall transparent-proxy` first, then install again',
  });
}
