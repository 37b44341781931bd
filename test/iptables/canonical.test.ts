import { describe, expect, it } from 'vitest';
import { canonicalRule, tokenize } from '../../src/iptables/canonical.js';

describe('canonicalRule', () => {
  it('tpctl long flags and iptables-save short flags give the same key', () => {
    const ours = canonicalRule('--append TPCTL_OUTBOUND --out-interface lo ! --destination 127.0.0.1/32 --protocol tcp --match owner --uid-owner 5678 --match comment --comment "tpctl/outbound: proxy to a local address is inbound" --jump TPCTL_INBOUND_REDIRECT');
    const saved = canonicalRule('-A TPCTL_OUTBOUND ! -d 127.0.0.1/32 -o lo -p tcp -m owner --uid-owner 5678 -m comment --comment "tpctl/outbound: proxy to a local address is inbound" -j TPCTL_INBOUND_REDIRECT');
    expect(saved).toEqual(ours);
    expect(ours.chain).toBe('TPCTL_OUTBOUND');
    expect(ours.comment).toBe('tpctl/outbound: proxy to a local address is inbound');
  });

  it('drops the implicit -m tcp/udp and maps log levels', () => {
    expect(canonicalRule('-A X -p tcp -m tcp --dport 22 -j RETURN').key).toBe(canonicalRule('--append X --protocol tcp --destination-port 22 --jump RETURN').key);
    expect(canonicalRule('-A X -j LOG --log-prefix "a b " --log-level 7').key).toBe(canonicalRule('--append X --jump LOG --log-prefix "a b " --log-level debug').key);
  });

  it('tells apart a changed value and a moved negation', () => {
    const base = canonicalRule('-A X -p tcp -j REDIRECT --to-ports 15001').key;
    expect(canonicalRule('-A X -p tcp -j REDIRECT --to-ports 15002').key).not.toBe(base);
    expect(canonicalRule('-A X -m owner ! --uid-owner 5 -j RETURN').key).not.toBe(canonicalRule('-A X -m owner --uid-owner 5 -j RETURN').key);
  });

  it('tokenizes quoted arguments', () => {
    expect(tokenize('-m comment --comment "tpctl/a b" -j X')).toEqual(['-m', 'comment', '--comment', 'tpctl/a b', '-j', 'X']);
  });
});
