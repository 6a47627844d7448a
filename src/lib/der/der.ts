/**
 * A minimal DER encoder and reader, shared by the control plane's CA and the proxy: just enough to
 * sign leaf certificates without a generic ASN.1 library on the hot path (a generic encoder costs
 * milliseconds per leaf; this costs microseconds; src/control/identity/leaf-signer.ts), and for
 * the proxy to build its CSR (src/proxy/identity/csr.ts) without loading one at all (@peculiar/x509
 * and its dependencies are ~19 MiB of a proxy's memory). The reader is strict and bounds-checked
 * (definite lengths up to 3 octets, one-octet tags), as it also walks workloads' CSRs
 * (src/control/identity/csr-check.ts): malformed input throws, never reads out of range.
 */

/** One encoded element: tag, length, value. */
export function tlv(tag: number, value: Buffer): Buffer {
  const n = value.length;
  let len: Buffer;
  if (n < 0x80) len = Buffer.from([n]);
  else if (n < 0x100) len = Buffer.from([0x81, n]);
  else if (n < 0x10000) len = Buffer.from([0x82, n >> 8, n & 0xff]);
  else len = Buffer.from([0x83, n >> 16, (n >> 8) & 0xff, n & 0xff]);
  return Buffer.concat([Buffer.from([tag]), len, value]);
}

export const seq = (...items: Buffer[]): Buffer => tlv(0x30, Buffer.concat(items));
/** A SET (OF): the items in the order given (a SET OF with one item needs no sorting). */
export const set = (...items: Buffer[]): Buffer => tlv(0x31, Buffer.concat(items));
export const octetString = (b: Buffer): Buffer => tlv(0x04, b);
export const bitString = (b: Buffer): Buffer => tlv(0x03, Buffer.concat([Buffer.from([0]), b]));
export const bool = (v: boolean): Buffer => tlv(0x01, Buffer.from([v ? 0xff : 0]));
/** Context-specific constructed `[n]` (explicit tagging). */
export const explicit = (n: number, inner: Buffer): Buffer => tlv(0xa0 | n, inner);

/** A non-negative INTEGER from big-endian bytes (minimal, with a 0 byte when the top bit is set). */
export function uint(bytes: Buffer): Buffer {
  let i = 0;
  while (i < bytes.length - 1 && bytes[i] === 0) i++;
  const b = bytes.subarray(i);
  return tlv(0x02, b[0] & 0x80 ? Buffer.concat([Buffer.from([0]), b]) : b);
}

/** An OBJECT IDENTIFIER from its dotted form. */
export function oid(dotted: string): Buffer {
  const parts = dotted.split('.').map(Number);
  const out = [40 * parts[0] + parts[1]];
  for (const p of parts.slice(2)) {
    const chunk = [p & 0x7f];
    for (let v = Math.floor(p / 128); v > 0; v = Math.floor(v / 128)) chunk.unshift((v & 0x7f) | 0x80);
    out.push(...chunk);
  }
  return tlv(0x06, Buffer.from(out));
}

/** A Time as RFC 5280 wants it: UTCTime through 2049, GeneralizedTime after; whole seconds. */
export function time(d: Date): Buffer {
  const iso = d.toISOString(); // 2026-11-26T09:37:56.123Z
  const digits = iso.slice(0, 19).replace(/[-T:]/g, '');
  return d.getUTCFullYear() < 2050
    ? tlv(0x17, Buffer.from(`${digits.slice(2)}Z`, 'ascii'))
    : tlv(0x18, Buffer.from(`${digits}Z`, 'ascii'));
}

/** An element found by `children`: its tag and its whole encoding. */
export interface Element {
  readonly tag: number;
  /** Tag, length and value. */
  readonly der: Buffer;
  readonly value: Buffer;
}

/** The elements inside a constructed element's value. Throws on malformed input. */
export function children(value: Buffer): Element[] {
  const out: Element[] = [];
  let at = 0;
  while (at < value.length) {
    if (at + 2 > value.length) throw new Error('truncated DER');
    const tag = value[at];
    if ((tag & 0x1f) === 0x1f) throw new Error('unsupported DER tag');
    let len = value[at + 1];
    let head = 2;
    if (len & 0x80) {
      const n = len & 0x7f;
      if (n < 1 || n > 3 || at + 2 + n > value.length) throw new Error('unsupported DER length');
      len = 0;
      for (let i = 0; i < n; i++) len = len * 256 + value[at + 2 + i];
      head += n;
    }
    if (at + head + len > value.length) throw new Error('truncated DER');
    out.push({
      tag,
      der: value.subarray(at, at + head + len),
      value: value.subarray(at + head, at + head + len),
    });
    at += head + len;
  }
  return out;
}

/** The encoded subject Name of a DER certificate (to become the issuer field of what it signs). */
export function certificateSubject(certDer: Buffer): Buffer {
  const [cert] = children(certDer);
  const [tbs] = children(cert.value);
  const fields = children(tbs.value);
  const start = fields[0].tag === 0xa0 ? 1 : 0; // optional [0] version
  // serialNumber, signature, issuer, validity, subject
  return fields[start + 4].der;
}
