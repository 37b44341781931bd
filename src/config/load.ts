/**
 * Reading `--config FILE|-` sources: YAML or JSON (JSON is read by the YAML parser,
 * which accepts it). `-` reads standard input, once. Every source is read with a
 * size limit, and a key given twice in one mapping is an error naming the key.
 */
import { open } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { Node as YamlNode } from 'yaml';
import { ConfigError } from '../errors.js';
import type { ConfigFileInput } from './schema.js';
import { quoteValue } from '../value-error.js';

// The YAML parser (~20 ms to load) is required only when a config file is given.
const yaml = (): typeof import('yaml') => createRequire(import.meta.url)('yaml') as typeof import('yaml');

export const STDIN_SOURCE = '<stdin>';

/**
 * Far above any real config file (100,000 excluded CIDRs as JSON are ~2 MiB), far
 * below what would exhaust memory: a file larger than this is not a config file.
 */
export const CONFIG_MAX_BYTES = 16 * 1024 * 1024;
const CONFIG_MAX_TEXT = '16 MiB';

export interface ConfigReaders {
  readFile(path: string): Promise<string>;
  readStdin(): Promise<string>;
}

/** Thrown by the readers when a source holds more than CONFIG_MAX_BYTES. */
export class ConfigTooLargeError extends Error {
  constructor() {
    super(`larger than ${CONFIG_MAX_TEXT}`);
  }
}

async function readLimited(chunks: AsyncIterable<unknown>): Promise<string> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of chunks) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
    size += buf.length;
    if (size > CONFIG_MAX_BYTES) throw new ConfigTooLargeError();
    parts.push(buf);
  }
  return Buffer.concat(parts).toString('utf8');
}

export function readAllStdin(stream: NodeJS.ReadableStream = process.stdin): Promise<string> {
  return readLimited(stream);
}

async function readFileLimited(path: string): Promise<string> {
  const handle = await open(path, 'r');
  try {
    // Stops after the limit whatever the file claims to be (a FIFO, /dev/zero).
    return await readLimited(handle.createReadStream({ autoClose: false }));
  } finally {
    await handle.close();
  }
}

export const defaultConfigReaders: ConfigReaders = {
  readFile: readFileLimited,
  readStdin: () => readAllStdin(),
};

function keyText(key: unknown): string {
  if (yaml().isScalar(key)) return String(key.value);
  return String(key);
}

/** The dotted path of the first key that appears twice in one mapping, if any. */
function firstDuplicateKey(node: YamlNode | null | undefined, path: string[] = []): string | undefined {
  if (!yaml().isMap(node)) return undefined;
  const seen = new Set<string>();
  for (const pair of node.items) {
    const key = keyText(pair.key);
    if (seen.has(key)) return [...path, key].join('.');
    seen.add(key);
    const inner = firstDuplicateKey(pair.value as YamlNode | null, [...path, key]);
    if (inner) return inner;
  }
  return undefined;
}

/**
 * The dotted path of the first key given twice in one object of (valid) JSON text:
 * JSON.parse keeps the last silently. One linear pass over the text.
 */
function firstDuplicateJsonKey(text: string): string | undefined {
  const stack: Array<{ keys?: Set<string>; path: string[]; key?: string; expectKey: boolean }> = [];
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      const top = stack.at(-1);
      if (top?.keys && top.expectKey) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (top.keys.has(key)) return [...top.path, key].join('.');
        top.keys.add(key);
        top.key = key;
        top.expectKey = false;
      }
      i = j;
    } else if (c === '{' || c === '[') {
      const parent = stack.at(-1);
      const path = parent ? (parent.keys ? [...parent.path, parent.key ?? ''] : parent.path) : [];
      stack.push(c === '{' ? { keys: new Set(), path, expectKey: true } : { path, expectKey: false });
    } else if (c === '}' || c === ']') {
      stack.pop();
    } else if (c === ',') {
      const top = stack.at(-1);
      if (top?.keys) top.expectKey = true;
    }
  }
  return undefined;
}

/**
 * A JSON file is read with JSON.parse, some 20× faster than the YAML parser on big
 * exclusion lists (100,000 CIDRs); anything JSON.parse refuses (YAML, or broken
 * JSON, whose message the YAML parser words better) goes to the YAML parser.
 */
function parseJson(text: string): { data: unknown } | undefined {
  if (!/^\s*[{[]/.test(text)) return undefined;
  try {
    return { data: JSON.parse(text) as unknown };
  } catch {
    return undefined;
  }
}

function duplicateKeyError(source: string, dup: string): ConfigError {
  const shown = /^[\w.-]{1,80}$/.test(dup) ? dup : quoteValue(dup);
  return new ConfigError(`${source}: ${shown}: key given twice`, { hint: 'keep one of them' });
}

/** Parses one file's text; the first line of a parser error names the file. */
export function parseConfigText(source: string, text: string): ConfigFileInput {
  if (Buffer.byteLength(text) > CONFIG_MAX_BYTES) throw tooLarge(source);
  const json = parseJson(text);
  if (json) {
    const dup = firstDuplicateJsonKey(text);
    if (dup !== undefined) throw duplicateKeyError(source, dup);
    return { source, data: json.data ?? {} };
  }
  // uniqueKeys off so a duplicate is reported by name below, not as "keys must be unique".
  const doc = yaml().parseDocument(text, { uniqueKeys: false });
  const err = doc.errors[0];
  if (err) {
    const first = err.message.split('\n')[0]?.trim() ?? '';
    throw new ConfigError(`${source}: not valid YAML or JSON: ${first.length > 120 ? `${first.slice(0, 120)}…` : first}`);
  }
  const dup = firstDuplicateKey(doc.contents as YamlNode | null);
  if (dup !== undefined) throw duplicateKeyError(source, dup);
  return { source, data: doc.toJS() ?? {} };
}

function tooLarge(source: string): ConfigError {
  return new ConfigError(`--config: ${source} is larger than ${CONFIG_MAX_TEXT}, the limit for config files`, {
    hint: 'pass the transparent-proxy config file itself',
  });
}

/** Reads every source in order; later sources win when resolved. */
export async function loadConfigFiles(paths: string[], readers: ConfigReaders = defaultConfigReaders): Promise<ConfigFileInput[]> {
  if (paths.filter((p) => p === '-').length > 1) {
    throw new ConfigError('--config: "-" (standard input) is given more than once', { hint: 'stdin can be read only once' });
  }
  const out: ConfigFileInput[] = [];
  for (const path of paths) {
    if (path === '') throw new ConfigError('--config: empty path', { hint: 'expected a file path, or - for standard input' });
    const source = path === '-' ? STDIN_SOURCE : path;
    let text: string;
    try {
      text = path === '-' ? await readers.readStdin() : await readers.readFile(path);
    } catch (e) {
      if (e instanceof ConfigTooLargeError) throw tooLarge(source);
      const err = e as NodeJS.ErrnoException;
      const why = err.code === 'ENOENT' ? 'no such file' : err.code === 'EISDIR' ? 'is a directory' : (err.code ?? err.message);
      throw new ConfigError(`--config: cannot read ${source}: ${why}`);
    }
    out.push(parseConfigText(source, text));
  }
  return out;
}
