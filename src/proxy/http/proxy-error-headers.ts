/** The headers every proxy-made response carries (DESIGN.md §3, RFC 9209). */
import type { WeftError } from '../../lib/errors.js';
import { grpcCodeFor } from './exchange.js';
import { PROXY_ERROR_HEADER } from './headers.js';

/** Identifies this proxy in `Proxy-Status` entries. */
export const PROXY_NAME = 'weft';

export function proxyErrorHeaders(err: WeftError): Record<string, string> {
  return {
    [PROXY_ERROR_HEADER]: err.reason,
    'proxy-status': `${PROXY_NAME}; error=${err.proxyStatus}; details=${JSON.stringify(err.message.replace(/[^\x20-\x7e]/g, '?'))}`,
  };
}

/** Headers of a gRPC trailers-only response carrying the error as a gRPC status. */
export function grpcErrorHeaders(err: WeftError): Record<string, string> {
  return {
    ':status': '200',
    'content-type': 'application/grpc',
    'grpc-status': grpcCodeFor(err),
    'grpc-message': grpcPercentEncode(`weft proxy: ${err.message}`),
    ...proxyErrorHeaders(err),
  };
}

/**
 * The gRPC spec's Percent-Encoded form: only '%' and bytes outside 0x20-0x7e are escaped.
 * (encodeURIComponent escapes ':' and more, which clients such as grpc-js, decoding with
 * decodeURI, show as-is: "weft proxy%3A ...".)
 */
function grpcPercentEncode(s: string): string {
  let out = '';
  for (const b of Buffer.from(s, 'utf8')) {
    out +=
      b >= 0x20 && b <= 0x7e && b !== 0x25
        ? String.fromCharCode(b)
        : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}
