import { describe, expect, it } from 'vitest';
import { listedComment, parseListing } from '../../src/nftables/listing.js';
import { countersFromJson } from '../../src/nftables/status.js';

const LISTING = `table inet tpctl {
	set outbound_excluded_ports {
		type inet_service
		flags interval
		elements = { 22, 8000-8100,
			     9000 }
	}

	chain nat_output {
		type nat hook output priority dstnat; policy accept;
		jump output comment "tpctl/jump ruleset=abc"
	}

	chain outbound {
		tcp dport @outbound_excluded_ports counter return comment "tpctl/outbound: excluded port"
		meta l4proto tcp counter redirect to :15001 comment "tpctl/outbound: to the proxy"
	}
}
`;

describe('nftables listing', () => {
  it('splits a stateless listing into sets (one line each) and chains (hook header, rules)', () => {
    const t = parseListing(LISTING);
    expect([...t.sets.keys()]).toEqual(['outbound_excluded_ports']);
    expect(t.sets.get('outbound_excluded_ports')).toBe('type inet_service flags interval elements = { 22, 8000-8100, 9000 }');
    expect(t.chains.get('nat_output')).toEqual({ header: 'type nat hook output priority dstnat; policy accept;', rules: ['jump output comment "tpctl/jump ruleset=abc"'] });
    expect(t.chains.get('outbound')?.header).toBe('');
    expect(t.chains.get('outbound')?.rules.map(listedComment)).toEqual(['tpctl/outbound: excluded port', 'tpctl/outbound: to the proxy']);
  });

  it('counts the packets of our counted rules per decision; jumps and foreign comments count nothing', () => {
    const rule = (comment: string, packets: number) => ({ rule: { comment, expr: [{ counter: { packets, bytes: 60 * packets } }] } });
    const json = JSON.stringify({
      nftables: [
        rule('tpctl/outbound: to the proxy', 3),
        rule('tpctl/output: tcp to outbound', 9),
        rule('tpctl/inbound: excluded port', 1),
        rule('someone else', 5),
        { rule: { comment: 'tpctl/dns: every query to the proxy', expr: [{ counter: { packets: 2, bytes: 0 } }] } },
      ],
    });
    const c = countersFromJson([json, JSON.stringify({ nftables: [rule('tpctl/outbound: to the proxy', 1)] })]);
    expect(c).toMatchObject({ outbound_redirected: 4, inbound_excluded_port: 1, dns_redirected: 2, excluded_uid: 0 });
  });
});
