/**
 * The iptables engine: nat-table REDIRECT rules in TPCTL_ chains, applied
 * atomically per family with iptables-restore.
 *
 * Ownership: every chain tpctl creates is named `TPCTL_*`; every rule carries a
 * comment starting `tpctl/`. Built-in chains get exactly one rule each from tpctl,
 * a jump inserted first (`tpctl/jump ruleset=<digest>`); the rest lives in our chains.
 *
 * Idempotency: the digest is a hash of the family's ruleset. A reinstall whose
 * digest, chains, rule counts and rule comments match what iptables-save shows
 * changes nothing. Otherwise one `iptables-restore --noflush` per family flushes
 * our chains (by re-declaring them), deletes our old jumps (`-D` copies of the
 * saved lines), writes the new rules and jumps, and deletes chains no longer used.
 *
 * Rollback: each family's tpctl state is read from iptables-save before anything
 * changes; when a later family fails, earlier ones are turned back into exactly
 * that state (same rules, jumps at their old positions). nft tables that tpctl
 * created are deleted again once empty (the jump comment says `created-table`);
 * legacy tables cannot be unregistered and stay, empty.
 *
 * "Unchanged tables" means iptables-save output equal after dropping `#` lines
 * (timestamps) and zeroing `[packets:bytes]` counters; the one exception is a
 * legacy table tpctl had to register, which stays behind empty.
 */
import type { TransparentProxyConfig } from '../config/types.js';
import { buildRulesets } from './apply.js';
import { renderFirewalldDirect } from './firewalld.js';
import { renderFamilyRuleset } from './render.js';

export { installIptables, uninstallIptables, type InstallOptions } from './apply.js';
export { CHAIN_PREFIX, COMMENT_PREFIX } from './model.js';
export { DEFAULT_FIREWALLD_DIRECT_PATH } from './firewalld.js';
export { backendHoldingTpctl } from './backend.js';

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
