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
