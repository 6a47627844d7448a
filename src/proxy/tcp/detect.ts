/**
 * Protocol detection on a freshly accepted connection (DESIGN.md §3). It reads only as many
 * bytes as it needs to decide, then pauses the socket and puts those bytes back, so the handler
 * chosen sees the stream from its first byte. A client that says nothing is handed on as opaque
 * after `timeoutMs`: detection never stalls a server-speaks-first protocol for longer than that,
 * and ports known to be server-first skip it altogether (the caller decides that).
 */
import type net from 'node:net';
import { scanClientHello } from '../tls/client-hello.js';
import { MESH_ALPN } from '../tls/mesh-alpn.js';
import {
  decodeTransportHeader,
  MAX_TRANSPORT_HEADER_BYTES,
  TRANSPORT_MAGIC,
  type TransportHeader,
} from './transport-header.js';

export type Detected =
  | { readonly kind: 'h2' }
  | { readonly kind: 'h1' }
  /** A TLS ClientHello offering ALPN `weft.mesh/1`: a peer proxy (docs/identity.md). */
  | { readonly kind: 'mesh-tls' }
  /** Any other TLS (the app's own), or bytes that only start like TLS. */
  | { readonly kind: 'tls' }
  | { readonly kind: 'transport'; readonly header: TransportHeader }
  | { readonly kind: 'bad-transport' }
  | { readonly kind: 'opaque'; readonly reason: 'unknown' | 'timeout' | 'eof' };

const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const MAGIC = Buffer.from(TRANSPORT_MAGIC, 'latin1');
const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH']);
const MAX_REQUEST_LINE_BYTES = 8192;
/** RFC 9112 §3: method (a token) SP request-target SP HTTP-version, without the line end. */
const REQUEST_LINE = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+ [\x21-\x7e\x80-\xff]+ HTTP\/\d\.\d\r?$/;
/** Every beginning of a REQUEST_LINE match (and a few more, which only delay the verdict). */
const REQUEST_LINE_PREFIX =
  /^[!#$%&'*+.^_`|~0-9A-Za-z-]+(?: [\x21-\x7e\x80-\xff]*(?: (?:H(?:T(?:T(?:P(?:\/(?:\d(?:\.(?:\d\r?)?)?)?)?)?)?)?)?)?)?$/;

/** What the bytes so far say: a verdict, or undefined when more bytes are needed. */
export function classify(buf: Buffer, acceptTransportHeader: boolean): Detected | undefined {
  if (buf.length === 0) return undefined;
  if (buf[0] === 0x16) return classifyTls(buf);
  if (isPrefixOf(buf, H2_PREFACE)) return buf.length >= H2_PREFACE.length ? { kind: 'h2' } : undefined;
  if (acceptTransportHeader && isPrefixOf(buf, MAGIC)) {
    const eol = buf.indexOf('\r\n');
    if (eol < 0) return buf.length > MAX_TRANSPORT_HEADER_BYTES ? { kind: 'bad-transport' } : undefined;
    const header = decodeTransportHeader(buf.toString('latin1', 0, eol));
    return header ? { kind: 'transport', header } : { kind: 'bad-transport' };
  }
  const eol = buf.indexOf('\n');
  const line = buf.toString('latin1', 0, eol < 0 ? Math.min(buf.length, 64) : eol);
  const method = /^[A-Za-z]*/.exec(line)![0];
  // A known method and a space: HTTP even if the rest is malformed, so an HTTP client gets the
  // parser's precise 400, not a silent pipe.
  const knownMethod = METHODS.has(method) && line[method.length] === ' ';
  if (eol < 0) {
    // Still inside the first line: keep reading while it can become a request line. The same
    // grammar decides complete lines, so the verdict never depends on how TCP cut the bytes.
    if (!knownMethod && !REQUEST_LINE_PREFIX.test(line)) return { kind: 'opaque', reason: 'unknown' };
    return buf.length > MAX_REQUEST_LINE_BYTES ? { kind: 'h1' } : undefined;
  }
  if (knownMethod || REQUEST_LINE.test(line)) return { kind: 'h1' };
  return { kind: 'opaque', reason: 'unknown' };
}

/** Waits for the whole ClientHello: only its ALPN list tells the mesh's TLS from the app's. */
function classifyTls(buf: Buffer): Detected | undefined {
  const hello = scanClientHello(buf);
  if (hello.kind === 'more') return undefined;
  return hello.kind === 'hello' && hello.alpn.includes(MESH_ALPN) ? { kind: 'mesh-tls' } : { kind: 'tls' };
}

function isPrefixOf(buf: Buffer, full: Buffer): boolean {
  const n = Math.min(buf.length, full.length);
  return buf.subarray(0, n).equals(full.subarray(0, n));
}

/**
 * Reads from `socket` until `classify` decides, the client is silent for `timeoutMs`, or the
 * client closes without a byte. Resolves with the verdict and leaves the socket paused with every
 * unconsumed byte still in it (a transport header is consumed). Never rejects; a socket error
 * resolves as eof.
 *
 * Bytes are peeked, never taken: each read is unshifted at once, so the socket's own buffer holds
 * them whatever happens next, and its 'end' waits until the next owner has read them. (A stream
 * cannot take bytes back once it has emitted 'end': a client that sent part of a line and then
 * closed used to lose those bytes and its FIN.) Such a client is only seen at the timeout.
 */
export function detectProtocol(
  socket: net.Socket,
  timeoutMs: number,
  acceptTransportHeader: boolean,
): Promise<Detected> {
  return new Promise((resolve) => {
    let peeked = 0;
    const finish = (d: Detected, buf?: Buffer) => {
      clearTimeout(timer);
      socket.removeListener('readable', onReadable);
      socket.removeListener('end', onEof);
      socket.removeListener('error', onEof);
      socket.pause();
      if (d.kind === 'transport' && buf) socket.read(buf.indexOf('\r\n') + 2);
      resolve(d);
    };
    const onReadable = () => {
      const length = socket.readableLength;
      // 'readable' with nothing buffered only comes at the end of the stream.
      if (length === 0) return finish({ kind: 'opaque', reason: 'eof' });
      // Nothing new: the echo of our own unshift, or a FIN after a partial first line.
      if (length === peeked) return;
      const buf = socket.read() as Buffer;
      socket.unshift(buf);
      peeked = buf.length;
      const d = classify(buf, acceptTransportHeader);
      if (d) finish(d, buf);
    };
    const onEof = () => finish({ kind: 'opaque', reason: 'eof' });
    const timer = setTimeout(() => finish({ kind: 'opaque', reason: 'timeout' }), timeoutMs);
    socket.on('readable', onReadable);
    socket.once('end', onEof);
    socket.once('error', onEof);
  });
}

/** The metric label of a detection outcome. */
export function detectResultLabel(d: Detected): string {
  switch (d.kind) {
    case 'h1':
      return 'http/1';
    case 'h2':
      return 'http/2';
    case 'opaque':
      return d.reason === 'unknown' ? 'opaque' : d.reason;
    default:
      return d.kind;
  }
}
