/**
 * Protocol detection on a freshly accepted connection (DESIGN.md §3). It reads only as many
 * bytes as it needs to decide, then pauses the socket and puts those bytes back, so the handler
 * chosen sees the stream from its first byte. A client that says nothing is handed on as opaque
 * after `timeoutMs`: detection never stalls a server-speaks-first protocol for longer than that,
 * and ports known to be server-first skip it altogether (the caller decides that).
 */
import type net from 'node:net';
import {
  decodeTransportHeader,
  MAX_TRANSPORT_HEADER_BYTES,
  TRANSPORT_MAGIC,
  type TransportHeader,
} from './transport-header.js';

export type Detected =
  | { readonly kind: 'h2' }
  | { readonly kind: 'h1' }
  | { readonly kind: 'tls' }
  | { readonly kind: 'transport'; readonly header: TransportHeader }
  | { readonly kind: 'bad-transport' }
  | { readonly kind: 'opaque'; readonly reason: 'unknown' | 'timeout' | 'eof' };

const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const MAGIC = Buffer.from(TRANSPORT_MAGIC, 'latin1');
const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH']);
const MAX_REQUEST_LINE_BYTES = 8192;

/** What the bytes so far say: a verdict, or undefined when more bytes are needed. */
export function classify(buf: Buffer, acceptTransportHeader: boolean): Detected | undefined {
  if (buf.length === 0) return undefined;
  if (buf[0] === 0x16) return { kind: 'tls' };
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
  if (eol < 0) {
    // Still inside the first line: keep reading while it can become a request line.
    if (buf.length > MAX_REQUEST_LINE_BYTES) return { kind: 'h1' };
    if (method.length === line.length && method.length < 16 && /^[A-Z]*$/.test(method)) return undefined;
    return METHODS.has(method) && line[method.length] === ' '
      ? undefined
      : { kind: 'opaque', reason: 'unknown' };
  }
  // A complete first line: HTTP/1 if it ends like one or starts with a known method (a
  // malformed line from an HTTP client then gets the parser's precise 400, not a silent pipe).
  if (/ HTTP\/\d\.\d\r?$/.test(line) || (METHODS.has(method) && line[method.length] === ' '))
    return { kind: 'h1' };
  return { kind: 'opaque', reason: 'unknown' };
}

function isPrefixOf(buf: Buffer, full: Buffer): boolean {
  const n = Math.min(buf.length, full.length);
  return buf.subarray(0, n).equals(full.subarray(0, n));
}

/**
 * Reads from `socket` until `classify` decides, the client is silent for `timeoutMs`, or the
 * client closes. Resolves with the verdict and leaves the socket paused with every unconsumed
 * byte unshifted (a transport header is consumed). Never rejects; a socket error resolves as eof.
 */
export function detectProtocol(
  socket: net.Socket,
  timeoutMs: number,
  acceptTransportHeader: boolean,
): Promise<Detected> {
  return new Promise((resolve) => {
    let buf: Buffer = Buffer.alloc(0);
    const finish = (d: Detected) => {
      clearTimeout(timer);
      socket.removeListener('data', onData);
      socket.removeListener('end', onEnd);
      socket.removeListener('error', onEnd);
      socket.pause();
      if (d.kind === 'transport') buf = buf.subarray(buf.indexOf('\r\n') + 2);
      if (buf.length > 0) socket.unshift(buf);
      resolve(d);
    };
    const onData = (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      const d = classify(buf, acceptTransportHeader);
      if (d) finish(d);
    };
    const onEnd = () => finish(classify(buf, acceptTransportHeader) ?? { kind: 'opaque', reason: 'eof' });
    const timer = setTimeout(() => finish({ kind: 'opaque', reason: 'timeout' }), timeoutMs);
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('error', onEnd);
    socket.resume();
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
