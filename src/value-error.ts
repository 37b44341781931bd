/**
 * What a value parser throws: the problem with the value and what is allowed. It
 * carries no source; the resolver adds the flag name or `file: field.path` and turns
 * it into a ConfigError, so every parser stays reusable for flags and files alike.
 */
export class ValueError extends Error {
  constructor(
    readonly problem: string,
    readonly allowed?: string,
  ) {
    super(problem);
    this.name = 'ValueError';
  }
}

/** The longest stretch of a bad value an error message repeats. */
export const QUOTE_MAX_CHARS = 40;

/**
 * A bad value as an error message shows it: JSON-quoted (control characters
 * escaped) and cut to its first QUOTE_MAX_CHARS characters, so a pasted file or a
 * binary blob gives one short line rather than echoing itself.
 */
export function quoteValue(v: unknown): string {
  const text = typeof v === 'string' ? v : String(v);
  if (text.length <= QUOTE_MAX_CHARS) return JSON.stringify(text);
  return `${JSON.stringify(text.slice(0, QUOTE_MAX_CHARS))}… (${text.length} characters)`;
}
