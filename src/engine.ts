/** What an engine reports back to the command layer. */
export interface EngineResult {
  /** False when the host already had exactly this installed (or nothing to remove). */
  changed: boolean;
  /** Human-readable lines: what was done, or the dry-run text. */
  lines: string[];
}

/** The engines (iptables, nftables, ebpf): resolveConfig picks one; engineOf reads it from a config. */
export { ENGINE_NAMES, engineOf, type EngineName } from './config/types.js';
