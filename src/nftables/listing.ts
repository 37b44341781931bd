/**
 * A table of ours as `nft -s list table` prints it, taken apart into sets and chains,
 * so two listings (the one recorded right after install, and today's) can be compared
 * rule by rule. Pure.
 */
export interface ListedChain {
  /** `type nat hook output priority dstnat; policy accept;` for a base chain, '' otherwise. */
  header: string;
  rules: string[];
}

export interface ListedTable {
  /** Set name → its body (type, flags, elements), whitespace collapsed. */
  sets: Map<string, string>;
  chains: Map<string, ListedChain>;
}

export function parseListing(text: string): ListedTable {
  const table: ListedTable = { sets: new Map(), chains: new Map() };
  let set: { name: string; body: string[] } | undefined;
  let chain: ListedChain | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    const open = /^(set|chain) (\S+) \{$/.exec(line);
    if (open && !set && !chain) {
      if (open[1] === 'set') set = { name: open[2]!, body: [] };
      else table.chains.set(open[2]!, (chain = { header: '', rules: [] }));
      continue;
    }
    if (line === '}' && (set || chain)) {
      if (set) table.sets.set(set.name, set.body.join(' ').replace(/\s+/g, ' '));
      set = undefined;
      chain = undefined;
      continue;
    }
    if (set) set.body.push(line);
    else if (chain && line) {
      if (/^type \S+ hook /.test(line)) chain.header = line;
      else chain.rules.push(line);
    }
  }
  return table;
}

/** `… comment "tpctl/outbound: to the proxy"` → `tpctl/outbound: to the proxy` ('' when none). */
export function listedComment(rule: string): string {
  return /comment "([^"]*)"$/.exec(rule)?.[1] ?? '';
}
