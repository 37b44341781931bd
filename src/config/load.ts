/**
 * Reading `--config FILE|-` sources: YAML or JSON (JSON is read by the YAML parser,
 * which accepts it). `-` reads standard input, once.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { ConfigError } from '../errors.js';
import type { ConfigFileInput } from './schema.js';

// The YAML parser (~20 ms to load) is required only when a config file is given.
const parseYaml = (text: string): unknown => (createRequire(import.meta.url)('yaml') as typeof import('yaml')).parse(text);

/**
 * A JSON file is read with JSON.parse, some 20× faster than the YAML parser on big
 * exclusion lists (100,000 CIDRs); anything JSON.parse refuses (YAML, or broken
 * JSON, whose message the YAML parser words better) goes to the YAML parser.
 */
function parseJson(text: string): unknown {
  if (!/^\s*[{[]/.test(text)) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

export const STDIN_SOURCE = '<stdin>';

export interface ConfigReaders {
  readFile(path: string): Promise<string>;
  readStdin(): Promise<string>;
}

export async function readAllStdin(stream: NodeJS.ReadableStream = process.stdin): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}

export const defaultConfigReaders: ConfigReaders = {
  readFile: (path) => readFile(path, 'utf8'),
  readStdin: () => readAllStdin(),
};

/** Parses one file's text; the first line of a parser error names the file. */
export function parseConfigText(source: string, text: string): ConfigFileInput {
  try {
    return { source, data: parseJson(text) ?? parseYaml(text) ?? {} };
  } catch (e) {
    const first = (e instanceof Error ? e.message : String(e)).split('\n')[0]?.trim() ?? '';
    throw new ConfigError(`${source}: not valid YAML or JSON: ${first}`);
  }
}

/** Reads every source in order; later sources win when resolved. */
export async function loadConfigFiles(paths: string[], readers: ConfigReaders = defaultConfigReaders): Promise<ConfigFileInput[]> {
  if (paths.filter((p) => p === '-').length > 1) {
    throw new ConfigError('--config: "-" (standard input) is given more than once', { hint: 'stdin can be read only once' });
  }
  const out: ConfigFileInput[] = [];
  for (const path of paths) {
    if (path === '') throw new ConfigError('--config: empty path', { hint: 'expected a file path, or - for standard input' });
    let text: string;
    try {
      text = path === '-' ? await readers.readStdin() : await readers.readFile(path);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      const why = err.code === 'ENOENT' ? 'no such file' : err.code === 'EISDIR' ? 'is a directory' : (err.code ?? err.message);
      throw new ConfigError(`--config: cannot read ${path === '-' ? STDIN_SOURCE : path}: ${why}`);
    }
    out.push(parseConfigText(path === '-' ? STDIN_SOURCE : path, text));
  }
  return out;
}
