/**
 * One comparable form for a rule, whether tpctl rendered it (`--append CHAIN
 * --protocol tcp ...`, long flags) or iptables-save printed it (`-A CHAIN -p tcp -m
 * tcp ...`, short flags, implicit matches spelled out). Options become
 * `[!]option value…` facts, sorted, so flag order and spelling do not matter but
 * every value does.
 */

const LONG_TO_SHORT: Record<string, string> = {
  '--append': '-A',
  '--protocol': '-p',
  '--source': '-s',
  '--destination': '-d',
  '--in-interface': '-i',
  '--out-interface': '-o',
  '--match': '-m',
  '--jump': '-j',
  '--goto': '-g',
  '--destination-port': '--dport',
  '--source-port': '--sport',
  '--destination-ports': '--dports',
  '--source-ports': '--sports',
};

const LOG_LEVELS: Record<string, string> = { emerg: '0', alert: '1', crit: '2', error: '3', warning: '4', notice: '5', info: '6', debug: '7' };

/** Splits like iptables-restore: whitespace, double quotes group (and are dropped). */
export function tokenize(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let inQuote = false;
  let any = false;
  for (const ch of line) {
    if (ch === '"') {
      inQuote = !inQuote;
      any = true;
    } else if (!inQuote && /\s/.test(ch)) {
      if (any) out.push(cur);
      cur = '';
      any = false;
    } else {
      cur += ch;
      any = true;
    }
  }
  if (any) out.push(cur);
  return out;
}

function isOption(t: string): boolean {
  return t.startsWith('-') && t.length > 1 && !/^-\d/.test(t);
}

export interface CanonicalRule {
  chain: string;
  /** The tpctl comment (`tpctl/outbound: redirect`), '' when none. */
  comment: string;
  /** Sorted facts joined by newlines: equal keys ⇔ same rule. */
  key: string;
}

export function canonicalRule(line: string): CanonicalRule {
  const tokens = tokenize(line).map((t) => LONG_TO_SHORT[t] ?? t);
  const facts: string[] = [];
  let chain = '';
  let comment = '';
  let negate = false;
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (t === '!') {
      negate = true;
      continue;
    }
    if (!isOption(t)) continue; // a stray value; iptables-save never prints one
    const values: string[] = [];
    while (i + 1 < tokens.length && !isOption(tokens[i + 1]!) && tokens[i + 1] !== '!') values.push(tokens[++i]!);
    if (t === '-A') {
      chain = values[0] ?? '';
    } else if (t === '-m' && (values[0] === 'tcp' || values[0] === 'udp')) {
      // implied by -p tcp/udp with --dport/--sport; iptables-save spells it out
    } else {
      if (t === '--comment') comment = values.join(' ');
      const v = t === '--log-level' ? values.map((x) => LOG_LEVELS[x] ?? x) : values;
      facts.push(`${negate ? '! ' : ''}${t} ${v.join(' ')}`.trimEnd());
    }
    negate = false;
  }
  return { chain, comment, key: facts.sort().join('\n') };
}
