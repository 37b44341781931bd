/**
 * The DNS query verify sends, and how its listener recognises it: a standard query
 * for `v<id>.tpctl-verify.invalid` (the .invalid TLD never resolves, so a query that
 * escapes to a real server when redirection is broken asks nothing of anyone).
 */
const SUFFIX = ['tpctl-verify', 'invalid'];

export function dnsQuery(id: number): Buffer {
  const labels = [`v${id}`, ...SUFFIX];
  const name = Buffer.concat([...labels.map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, 'ascii')])), Buffer.from([0])]);
  const header = Buffer.alloc(12);
  header.writeUInt16BE(id & 0xffff, 0); // transaction id
  header.writeUInt16BE(0x0100, 2); // standard query, recursion desired
  header.writeUInt16BE(1, 4); // one question
  const tail = Buffer.alloc(4);
  tail.writeUInt16BE(1, 0); // type A
  tail.writeUInt16BE(1, 2); // class IN
  return Buffer.concat([header, name, tail]);
}

/** The probe id a verify query carries, or undefined for any other datagram. */
export function probeIdOf(msg: Buffer): number | undefined {
  const m = /v(\d+)\x0ctpctl-verify\x07invalid\x00/.exec(msg.toString('latin1'));
  return m ? Number(m[1]) : undefined;
}

/** A reply to a query: same id and question, QR set, no answers (NXDOMAIN). */
export function dnsReply(query: Buffer): Buffer {
  const r = Buffer.from(query);
  if (r.length >= 4) r.writeUInt16BE(0x8183, 2);
  return r;
}
