/**
 * Just enough of the DNS wire format (RFC 1035) for the sandbox: a probe asks one TXT
 * question, a sandbox server answers it with one TXT record holding its JSON greeting,
 * so a test sees both that a real DNS exchange worked and which server answered.
 * Over TCP every message carries a two-byte length prefix (RFC 1035 4.2.2).
 */

const HEADER = 12;
const TYPE_TXT = 16;
const CLASS_IN = 1;
const FLAG_QR = 0x8000;
const FLAG_RD = 0x0100;
const FLAG_RA = 0x0080;
/** A name has at most 127 labels; a bound on the walk, whatever the packet says. */
const MAX_LABELS = 127;

export const PROBE_NAME = 'probe.tpctl.test';

function encodeName(name: string): Buffer {
  const parts = name.split('.').map((label) => {
    const b = Buffer.from(label, 'ascii');
    return Buffer.concat([Buffer.from([b.length]), b]);
  });
  return Buffer.concat([...parts, Buffer.from([0])]);
}

/** Offset just past the name starting at `off` (labels or a compression pointer), or -1. */
function skipName(msg: Buffer, off: number): number {
  for (let i = 0; i < MAX_LABELS && off < msg.length; i++) {
    const len = msg[off]!;
    if (len === 0) return off + 1;
    if ((len & 0xc0) === 0xc0) return off + 2 <= msg.length ? off + 2 : -1;
    off += 1 + len;
  }
  return -1;
}

/** A standard query for PROBE_NAME, type TXT, recursion desired. */
export function dnsQuery(id: number): Buffer {
  const header = Buffer.alloc(HEADER);
  header.writeUInt16BE(id, 0);
  header.writeUInt16BE(FLAG_RD, 2);
  header.writeUInt16BE(1, 4);
  const tail = Buffer.alloc(4);
  tail.writeUInt16BE(TYPE_TXT, 0);
  tail.writeUInt16BE(CLASS_IN, 2);
  return Buffer.concat([header, encodeName(PROBE_NAME), tail]);
}

/** The question section of a one-question query, or undefined when `msg` is not one. */
function questionOf(msg: Buffer): Buffer | undefined {
  if (msg.length < HEADER || (msg.readUInt16BE(2) & FLAG_QR) !== 0 || msg.readUInt16BE(4) !== 1) return undefined;
  const end = skipName(msg, HEADER);
  if (end < 0 || end + 4 > msg.length) return undefined;
  return msg.subarray(HEADER, end + 4);
}

/** The answer to a query: one TXT record holding `text`; undefined when `query` is not a DNS query. */
export function dnsAnswer(query: Buffer, text: string): Buffer | undefined {
  const question = questionOf(query);
  if (!question) return undefined;
  const header = Buffer.alloc(HEADER);
  header.writeUInt16BE(query.readUInt16BE(0), 0);
  header.writeUInt16BE(FLAG_QR | FLAG_RD | FLAG_RA, 2);
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(1, 6);
  const data = Buffer.from(text, 'utf8');
  const strings: Buffer[] = [];
  for (let off = 0; off < data.length; off += 255) {
    const chunk = data.subarray(off, off + 255);
    strings.push(Buffer.from([chunk.length]), chunk);
  }
  const rdata = Buffer.concat(strings);
  const record = Buffer.alloc(12);
  record.writeUInt16BE(0xc000 | HEADER, 0); // the name: a pointer to the question's
  record.writeUInt16BE(TYPE_TXT, 2);
  record.writeUInt16BE(CLASS_IN, 4);
  record.writeUInt32BE(0, 6);
  record.writeUInt16BE(rdata.length, 10);
  return Buffer.concat([header, question, record, rdata]);
}

/** The TXT text of the answer to query `id`; throws when `msg` is anything else. */
export function dnsAnswerText(msg: Buffer, id: number): string {
  if (msg.length < HEADER) throw new Error(`dns: ${msg.length}-byte message is shorter than a header`);
  if (msg.readUInt16BE(0) !== id) throw new Error(`dns: answer id ${msg.readUInt16BE(0)}, asked ${id}`);
  if ((msg.readUInt16BE(2) & FLAG_QR) === 0) throw new Error('dns: not a response');
  if (msg.readUInt16BE(6) < 1) throw new Error('dns: no answer record');
  let off = HEADER;
  for (let q = msg.readUInt16BE(4); q > 0; q--) {
    off = skipName(msg, off);
    if (off < 0) throw new Error('dns: bad question name');
    off += 4;
  }
  off = skipName(msg, off);
  if (off < 0 || off + 10 > msg.length) throw new Error('dns: truncated answer record');
  if (msg.readUInt16BE(off) !== TYPE_TXT) throw new Error(`dns: answer type ${msg.readUInt16BE(off)}, not TXT`);
  const end = off + 10 + msg.readUInt16BE(off + 8);
  if (end > msg.length) throw new Error('dns: truncated TXT data');
  const parts: Buffer[] = [];
  for (let p = off + 10; p < end; p += 1 + msg[p]!) parts.push(msg.subarray(p + 1, p + 1 + msg[p]!));
  return Buffer.concat(parts).toString('utf8');
}

/** A DNS message framed for TCP. */
export function tcpFrame(msg: Buffer): Buffer {
  const len = Buffer.alloc(2);
  len.writeUInt16BE(msg.length, 0);
  return Buffer.concat([len, msg]);
}

/** The first complete TCP-framed message in `buffered`, or undefined while it is incomplete. */
export function tcpUnframe(buffered: Buffer): Buffer | undefined {
  if (buffered.length < 2) return undefined;
  const len = buffered.readUInt16BE(0);
  return buffered.length >= 2 + len ? buffered.subarray(2, 2 + len) : undefined;
}
