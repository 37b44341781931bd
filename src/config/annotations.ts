/**
 * `--pod-annotations FILE`: a pod's annotations as the kubelet writes them into a
 * downward-API volume (`fieldRef: metadata.annotations`): one `key="value"` per line,
 * keys sorted, the value quoted the way Go's strconv.Quote (`%q`) quotes it — so a
 * value may hold `\"`, `\\`, `\n`, `\t`, `\xNN`, `\uXXXX`, `\UXXXXXXXX` and the other
 * escapes of a Go string literal.
 *
 * Only Kuma's annotations that the settings table names are used (settings.ts); any
 * other annotation, including unknown `kuma.io/` ones, is ignored.
 */
import { ConfigError } from '../errors.js';
import { quoteValue } from '../value-error.js';

export interface AnnotationEntry {
  name: string;
  value: string;
  /** 1-based line in the file, for messages. */
  line: number;
}

export interface AnnotationsInput {
  /** The path as given. */
  source: string;
  entries: AnnotationEntry[];
}

const SIMPLE_ESCAPES: Record<string, number> = { a: 7, b: 8, f: 12, n: 10, r: 13, t: 9, v: 11, '\\': 92, '"': 34 };

/** Thrown by unquoteGo: what is wrong with the quoted text. */
class QuoteError extends Error {}

function utf8(codePoint: number): number[] {
  if (codePoint > 0x10ffff || (codePoint >= 0xd800 && codePoint <= 0xdfff)) throw new QuoteError(`escape U+${codePoint.toString(16)} is not a character`);
  return [...Buffer.from(String.fromCodePoint(codePoint), 'utf8')];
}

/** A Go interpreted string literal (with its quotes) → its text. */
export function unquoteGo(quoted: string): string {
  if (quoted.length < 2 || !quoted.startsWith('"') || !quoted.endsWith('"')) throw new QuoteError('the value is not in double quotes');
  const body = quoted.slice(1, -1);
  const bytes: number[] = [];
  for (let i = 0; i < body.length; ) {
    const c = body[i] ?? '';
    if (c === '"') throw new QuoteError('an unescaped " inside the value');
    if (c !== '\\') {
      const cp = body.codePointAt(i) ?? 0;
      bytes.push(...utf8(cp));
      i += cp > 0xffff ? 2 : 1;
      continue;
    }
    const e = body[i + 1];
    if (e === undefined) throw new QuoteError('the value ends in a lone \\');
    const simple = SIMPLE_ESCAPES[e];
    if (simple !== undefined) {
      bytes.push(simple);
      i += 2;
      continue;
    }
    const hex = (n: number): number => {
      const digits = body.slice(i + 2, i + 2 + n);
      if (!new RegExp(`^[0-9a-fA-F]{${n}}$`).test(digits)) throw new QuoteError(`\\${e} needs ${n} hex digits`);
      return parseInt(digits, 16);
    };
    if (e === 'x') {
      bytes.push(hex(2)); // a raw byte, as Go writes one that is not valid UTF-8
      i += 4;
    } else if (e === 'u') {
      bytes.push(...utf8(hex(4)));
      i += 6;
    } else if (e === 'U') {
      bytes.push(...utf8(hex(8)));
      i += 10;
    } else if (/[0-7]/.test(e)) {
      const digits = body.slice(i + 1, i + 4);
      if (!/^[0-7]{3}$/.test(digits) || parseInt(digits, 8) > 255) throw new QuoteError('an octal escape needs 3 digits up to \\377');
      bytes.push(parseInt(digits, 8));
      i += 4;
    } else {
      throw new QuoteError(`unknown escape \\${e}`);
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

/** Parses the file's text; `source` names it in errors (`FILE:LINE: …`). */
export function parseAnnotations(source: string, text: string): AnnotationsInput {
  const entries: AnnotationEntry[] = [];
  const seen = new Set<string>();
  const lines = text.split('\n');
  lines.forEach((raw, index) => {
    const line = index + 1;
    if (raw.trim() === '') return;
    const eq = raw.indexOf('=');
    if (eq <= 0) {
      throw new ConfigError(`--pod-annotations: ${source}:${line}: ${quoteValue(raw)} is not key="value"`, {
        hint: 'expected the downward-API annotations file (fieldRef: metadata.annotations)',
      });
    }
    const name = raw.slice(0, eq);
    let value: string;
    try {
      value = unquoteGo(raw.slice(eq + 1));
    } catch (e) {
      if (!(e instanceof QuoteError)) throw e;
      throw new ConfigError(`--pod-annotations: ${source}:${line}: ${name}: ${e.message}`, { hint: 'expected a value quoted as the kubelet writes it, e.g. "15006"' });
    }
    if (seen.has(name)) throw new ConfigError(`--pod-annotations: ${source}:${line}: ${name}: given twice`, { hint: 'keep one of them' });
    seen.add(name);
    entries.push({ name, value, line });
  });
  return { source, entries };
}
