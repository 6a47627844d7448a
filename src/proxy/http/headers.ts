/**
 * Header handling between HTTP versions, per RFC 9110 §7.6.1 (hop-by-hop fields) and RFC 9113
 * §8.2.2 (connection-specific fields are forbidden in HTTP/2).
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';

/** Header names (lower case) whose value is a list of fields. */
export type Headers = Record<string, string | string[]>;

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
  'http2-settings',
  // Not hop-by-hop in RFC 9110's sense, but set by the inbound proxy for its own app alone: a
  // client's copy is never forwarded, in either direction, so an app cannot forge it.
  'weft-client-id',
]);

/** A message without fields (a bare `100 Continue`): one shared, frozen object. */
export const NO_FIELDS: Headers = Object.freeze({});

/** Header the outbound proxy adds when it carries an HTTP/1 request over the mesh's HTTP/2. */
export const ORIG_PROTO_HEADER = 'weft-orig-proto';
/** Per-request timeout override, e.g. `250ms`, `2s`. */
export const TIMEOUT_HEADER = 'weft-timeout';
/** The verified SPIFFE ID of the client, set by the inbound proxy on requests that came over mTLS. */
export const CLIENT_ID_HEADER = 'weft-client-id';
/** Header on every response the proxy itself makes. */
export const PROXY_ERROR_HEADER = 'weft-proxy-error';

/**
 * Copies end-to-end fields of an HTTP/1 or HTTP/2 message: drops hop-by-hop fields, fields the
 * Connection header names, pseudo-headers and `host` (carried as :authority / Host by the
 * caller). Keeps `te: trailers`, which gRPC needs end to end.
 */
export function endToEndHeaders(src: IncomingHttpHeaders): Headers {
  const named = src.connection ? connectionTokens(String(src.connection)) : undefined;
  const out: Headers = {};
  for (const name in src) {
    const v = src[name];
    if (v === undefined || name.charCodeAt(0) === 58 /* ':' */) continue;
    if (HOP_BY_HOP.has(name) || named?.has(name)) {
      if (name === 'te' && /(^|,)\s*trailers\s*(,|$)/i.test(String(v))) out.te = 'trailers';
      continue;
    }
    out[name] = v;
  }
  return out;
}

/** Fields of which node:http keeps the first copy and drops the others (as `IncomingMessage`). */
const FIRST_COPY_WINS = new Set([
  'age',
  'authorization',
  'content-length',
  'content-type',
  'etag',
  'expires',
  'from',
  'host',
  'if-modified-since',
  'if-unmodified-since',
  'last-modified',
  'location',
  'max-forwards',
  'proxy-authorization',
  'referer',
  'retry-after',
  'server',
  'user-agent',
]);

/**
 * The header object node:http would build from raw [name, value, ...] fields: names lower-cased,
 * `set-cookie` as a list, `cookie` copies joined with `; `, the fields above deduplicated (the
 * first wins) and other copies joined with `, ` (RFC 9110 §5.3).
 */
export function headersFromRaw(raw: readonly string[]): IncomingHttpHeaders {
  const out: Record<string, string | string[]> = Object.create(null);
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i].toLowerCase();
    const value = raw[i + 1];
    const prev = out[name];
    if (prev === undefined) out[name] = name === 'set-cookie' ? [value] : value;
    else if (name === 'set-cookie') (prev as string[]).push(value);
    else if (!FIRST_COPY_WINS.has(name)) out[name] = `${prev}${name === 'cookie' ? '; ' : ', '}${value}`;
  }
  return out;
}

function connectionTokens(v: string): Set<string> {
  return new Set(v.split(',').map((s) => s.trim().toLowerCase()));
}

/** True if the request carries a body: a Content-Length above 0 or chunked framing (HTTP/1). */
export function h1HasBody(headers: IncomingHttpHeaders): boolean {
  if (headers['transfer-encoding'] !== undefined) return true;
  const cl = headers['content-length'];
  return cl !== undefined && cl !== '0';
}

/** Parses `weft-timeout` values: `250`, `250ms`, `2s`, `1m`. Undefined when absent or invalid. */
export function parseTimeoutHeader(v: string | string[] | undefined): number | undefined {
  if (typeof v !== 'string') return undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$/.exec(v);
  if (!m) return undefined;
  const n = Number(m[1]) * (m[2] === 's' ? 1000 : m[2] === 'm' ? 60_000 : 1);
  return n > 0 ? Math.ceil(n) : undefined;
}

/** Response header set for HTTP/2: `:status` plus end-to-end fields. */
export function h2ResponseHeaders(status: number, headers: Headers): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = { ':status': status };
  for (const name in headers) out[name] = headers[name];
  return out;
}

/** True for a gRPC request (any `application/grpc` content type). */
export function isGrpc(headers: IncomingHttpHeaders | Headers): boolean {
  const ct = headers['content-type'];
  return typeof ct === 'string' && ct.startsWith('application/grpc');
}
