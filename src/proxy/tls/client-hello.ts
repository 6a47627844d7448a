/**
 * Reads the ALPN protocols a TLS ClientHello offers (RFC 8446 §4.1.2, RFC 7301 §3.1) without
 * consuming anything: protocol detection peeks at the first bytes of a connection and tells the
 * mesh's own TLS (ALPN `weft.mesh/1`) from an app's TLS, which passes through untouched.
 */

/** What the bytes so far say about a ClientHello. */
export type ClientHelloScan =
  /** Not all of the ClientHello has arrived yet. */
  | { readonly kind: 'more' }
  /** Not a ClientHello this parser understands (bad framing, another handshake type, too large). */
  | { readonly kind: 'invalid' }
  /** A whole ClientHello; `alpn` is empty when it offers none. */
  | { readonly kind: 'hello'; readonly alpn: readonly string[] };

const RECORD_HEADER_BYTES = 5;
const HANDSHAKE_RECORD = 0x16;
const CLIENT_HELLO = 0x01;
const ALPN_EXTENSION = 16;
/** RFC 8446 §5.1: a record's plaintext is at most 2^14 bytes. */
const MAX_RECORD_BYTES = 1 << 14;
/**
 * A ClientHello may span records; beyond this many bytes we stop waiting and call it invalid
 * (real ones are a few hundred bytes; post-quantum key shares make them ~2 KiB).
 */
export const MAX_CLIENT_HELLO_BYTES = 64 * 1024;

const MORE: ClientHelloScan = { kind: 'more' };
const INVALID: ClientHelloScan = { kind: 'invalid' };

/**
 * Scans `buf` (the first bytes of a connection) for a complete ClientHello. Handshake messages
 * fragmented over several records are reassembled; records must all be handshake records.
 */
export function scanClientHello(buf: Buffer): ClientHelloScan {
  const fragments: Buffer[] = [];
  let have = 0;
  let need = -1; // the handshake message's length with its 4-byte header, once known
  for (let at = 0; need < 0 || have < need; ) {
    if (buf.length < at + RECORD_HEADER_BYTES) return validPrefix(buf, at) ? MORE : INVALID;
    if (buf[at] !== HANDSHAKE_RECORD || buf[at + 1] !== 0x03) return INVALID;
    const length = buf.readUInt16BE(at + 3);
    if (length === 0 || length > MAX_RECORD_BYTES) return INVALID;
    if (buf.length < at + RECORD_HEADER_BYTES + length) return MORE;
    const fragment = buf.subarray(at + RECORD_HEADER_BYTES, at + RECORD_HEADER_BYTES + length);
    fragments.push(fragment);
    have += fragment.length;
    at += RECORD_HEADER_BYTES + length;
    if (need < 0 && have >= 4) {
      const first = fragments.length === 1 ? fragment : Buffer.concat(fragments);
      if (first[0] !== CLIENT_HELLO) return INVALID;
      need = 4 + first.readUIntBE(1, 3);
      if (need > MAX_CLIENT_HELLO_BYTES) return INVALID;
    }
  }
  const message = fragments.length === 1 ? fragments[0] : Buffer.concat(fragments);
  const alpn = alpnOf(message.subarray(4, need));
  return alpn ? { kind: 'hello', alpn } : INVALID;
}

/** True while the bytes from `at` on can still become a record header. */
function validPrefix(buf: Buffer, at: number): boolean {
  if (buf.length > at && buf[at] !== HANDSHAKE_RECORD) return false;
  return !(buf.length > at + 1 && buf[at + 1] !== 0x03);
}

/** The ALPN list of a ClientHello body, [] without the extension, null when malformed. */
function alpnOf(body: Buffer): string[] | null {
  const r = new Reader(body);
  r.skip(2 + 32); // legacy_version, random
  r.skip(r.u8()); // legacy_session_id
  r.skip(r.u16()); // cipher_suites
  r.skip(r.u8()); // legacy_compression_methods
  if (r.failed) return null;
  if (r.left === 0) return []; // no extensions at all (TLS 1.2 and older may omit them)
  const extensionsLength = r.u16();
  const extensionsEnd = r.at + extensionsLength;
  while (!r.failed && r.at < extensionsEnd) {
    const type = r.u16();
    const length = r.u16();
    if (type !== ALPN_EXTENSION) {
      r.skip(length);
      continue;
    }
    const listLength = r.u16();
    const listEnd = r.at + listLength;
    const names: string[] = [];
    while (!r.failed && r.at < listEnd) names.push(r.bytes(r.u8()).toString('latin1'));
    return r.failed || r.at !== listEnd ? null : names;
  }
  return r.failed || r.at > extensionsEnd ? null : [];
}

/** Bounds-checked big-endian reads; any read past the end sets `failed`. */
class Reader {
  at = 0;
  failed = false;
  readonly #buf: Buffer;

  constructor(buf: Buffer) {
    this.#buf = buf;
  }

  get left(): number {
    return this.#buf.length - this.at;
  }

  u8(): number {
    return this.#take(1) ? this.#buf[this.at - 1] : 0;
  }

  u16(): number {
    return this.#take(2) ? this.#buf.readUInt16BE(this.at - 2) : 0;
  }

  bytes(n: number): Buffer {
    return this.#take(n) ? this.#buf.subarray(this.at - n, this.at) : Buffer.alloc(0);
  }

  skip(n: number): void {
    this.#take(n);
  }

  #take(n: number): boolean {
    if (this.failed || this.at + n > this.#buf.length) {
      this.failed = true;
      return false;
    }
    this.at += n;
    return true;
  }
}
