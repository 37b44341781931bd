/** What an engine reports back to the command layer. */
export interface EngineResult {
  /** False when the host already had exactly this installed (or nothing to remove). */
  changed: boolean;
  /** Human-readable lines: what was done, or the dry-run text. */
  lines: string[];
}
