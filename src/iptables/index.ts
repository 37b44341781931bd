/**
 * The iptables engine: nat-table REDIRECT rules in TPCTL_ chains, applied
 * atomically per family with iptables-restore.
 */
import type { Logger, TransparentProxyConfig, UninstallConfig } from '../config/types.js';
import type { EngineResult } from '../engine.js';
import { buildRulesets, type InstallOptions, installIptablesEngine, uninstallIptablesEngine } from './apply.js';
import { renderFirewalldDirect } from './firewalld.js';
import { renderFamilyRuleset } from './render.js';

export { CHAIN_PREFIX, COMMENT_PREFIX } from './model.js';
export { DEFAULT_FIREWALLD_DIRECT_PATH } from './firewalld.js';
export { normalizeSave } from './save.js';
export type { InstallOptions } from './apply.js';

export async function installIptables(
  cfg: TransparentProxyConfig,
  log: Logger,
  opts: InstallOptions = {},
): Promise<EngineResult> {
  return installIptablesEngine(cfg, log, opts);
}

export async function uninstallIptables(cfg: UninstallConfig, log: Logger): Promise<EngineResult> {
  return uninstallIptablesEngine(cfg, log);
}

/** The iptables-restore text a fresh install writes, per family; pure (no root, no host access). */
export function renderIptablesRuleset(cfg: TransparentProxyConfig): { ipv4: string; ipv6?: string } {
  const [v4, v6] = buildRulesets(cfg);
  const out: { ipv4: string; ipv6?: string } = { ipv4: renderFamilyRuleset(v4!) };
  if (v6) out.ipv6 = renderFamilyRuleset(v6);
  return out;
}

/** firewalld direct.xml for the configured families (what --store-firewalld writes). */
export function renderIptablesFirewalld(cfg: TransparentProxyConfig): string {
  return renderFirewalldDirect(buildRulesets(cfg));
}
