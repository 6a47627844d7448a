/** The client's side of an exchange when the client speaks HTTP/2 (h2c, gRPC, or the mesh). */
import http2, { type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import { BadRequestError, type WeftError } from '../../lib/errors.js';
import {
  type Downstream,
  type RequestHead,
  requestMayHaveTrailers,
  type UpstreamResponse,
} from './exchange.js';
import { pump } from './h2-pump.js';
import {
  endToEndHeaders,
  type Headers,
  h2ResponseHeaders,
  isGrpc,
  ORIG_PROTO_HEADER,
  parseTimeoutHeader,
  TIMEOUT_HEADER,
} from './headers.js';
import { grpcErrorHeaders, proxyErrorHeaders } from './proxy-error-headers.js';

const { NGHTTP2_CANCEL, NGHTTP2_INTERNAL_ERROR } = http2.constants;

/**
 * Reads the request head of an HTTP/2 stream. A `weft-orig-proto` header (set by a peer
 * outbound proxy) says the request began as HTTP/1 and is consumed here.
 */
export function h2RequestHead(
  stream: ServerHttp2Stream,
  h: IncomingHttpHeaders,
  defaultAuthority: string | undefined,
  defaultTimeoutMs: number,
): RequestHead {
  const authority = h[':authority'] ?? h.host ?? defaultAuthority;
  if (!authority) throw new BadRequestError('request has no :authority');
  const headers = endToEndHeaders(h);
  const orig = headers[ORIG_PROTO_HEADER];
  delete headers[ORIG_PROTO_HEADER];
  const timeoutMs = parseTimeoutHeader(h[TIMEOUT_HEADER]) ?? defaultTimeoutMs;
  delete headers[TIMEOUT_HEADER];
  return {
    method: h[':method'] ?? 'GET',
    scheme: h[':scheme'] ?? 'http',
    authority,
    path: h[':path'] ?? '/',
    headers,
    origProto: orig === 'HTTP/1.0' || orig === 'HTTP/1.1' ? orig : 'HTTP/2',
    hasBody: !stream.endAfterHeaders,
    grpc: isGrpc(h),
    timeoutMs,
  };
}

export function h2Downstream(stream: ServerHttp2Stream, head: RequestHead): Downstream {
  let trailers: Headers | undefined;
  if (!head.hasBody) stream.resume();
  // Fires once, before the body's end, when the client ends its request with a trailer section;
  // not listened for where the next hop would not wait for any (a listener per gRPC request).
  else if (requestMayHaveTrailers(head)) stream.on('trailers', (t) => (trailers = endToEndHeaders(t)));
  return {
    head,
    body: head.hasBody ? stream : null,
    trailers: () => trailers,
    sendInformational: (status, headers) => {
      if (stream.headersSent || stream.destroyed || stream.closed) return;
      try {
        stream.additionalHeaders(status === 100 ? CONTINUE : { ...headers, ':status': status });
      } catch {
        // A field HTTP/2 cannot carry: a 1xx is advisory, the final response still goes.
      }
    },
    forward: (up) => forwardToH2(stream, head, up),
    fail: (err) => failH2(stream, head, err),
    // Not `writableFinished`: Node ends the writable side of a stream that closes early (client
    // RST_STREAM, connection lost), so it is always true by 'close'. `aborted` is set exactly
    // when the stream closed before our response was ended.
    onAbort: (cb) => stream.on('close', () => stream.aborted && cb()),
  };
}

function forwardToH2(stream: ServerHttp2Stream, head: RequestHead, up: UpstreamResponse): Promise<void> {
  return new Promise((resolve, reject) => {
    if (stream.destroyed) return reject(new Error('client went away'));
    // A gRPC response whose head carries grpc-status is Trailers-Only: it must stay one HEADERS
    // frame with END_STREAM, or grpc-js reads it as initial metadata and ends without a status.
    const trailersOnly = head.grpc && up.headers['grpc-status'] !== undefined;
    const noBody = head.method === 'HEAD' || up.status === 204 || up.status === 304 || trailersOnly;
    const body = up.body;
    // Once END_STREAM is queued, or every byte Content-Length promised, the client has what it
    // needs and may close the connection (curl does) before Node reports our last write done:
    // that response was delivered, not cut short.
    let endQueued = false;
    const declaredBytes = Number(up.headers['content-length'] ?? Number.NaN);
    let moved: { readonly bytes: number } | undefined;
    // Settles once: on the client's side finishing (resolve), the client's stream closing first
    // (resolve if delivered), or the upstream body failing. Plain listeners instead of
    // finished(): four instead of ~14 (see h2-pump.ts); each stream fires these events once and
    // is dropped after, so `on` (no once-wrapper) and no removal.
    let settled = false;
    const done = (err?: Error) => {
      if (settled) return;
      settled = true;
      if (err) reject(err);
      else resolve();
    };
    // Node also ends the writable side of a stream the client reset (closeStream → end()), and
    // 'finish' follows; `aborted` is set exactly then, so that 'finish' is a cut-short response.
    const delivered = () => endQueued || (declaredBytes > 0 && moved?.bytes === declaredBytes);
    stream.on('finish', () => done(stream.aborted && !delivered() ? prematureClose() : undefined));
    stream.on('close', () => done(delivered() ? undefined : prematureClose()));
    body.on('error', done);
    // A body that closes before its end (the next hop's session went away) is a cut-short response.
    body.on('close', () => !body.readableEnded && done(prematureClose()));
    if (noBody) {
      body.resume();
      stream.respond(h2ResponseHeaders(up.status, up.headers), END_STREAM);
      endQueued = true;
    } else {
      stream.respond(h2ResponseHeaders(up.status, up.headers), WAIT_FOR_TRAILERS);
      stream.on('wantTrailers', () => {
        stream.sendTrailers(up.trailers() ?? {});
        endQueued = true;
      });
      // Always waits for trailers: no END_STREAM on DATA to keep (see h2-pump.ts).
      moved = pump(body, stream, false);
    }
  });
}

const CONTINUE = Object.freeze({ ':status': 100 });

// Node copies respond() options: one shared object each instead of one per response.
const END_STREAM = Object.freeze({ endStream: true });
const WAIT_FOR_TRAILERS = Object.freeze({ waitForTrailers: true });

const prematureClose = () => new Error('stream closed before the response was complete');

function failH2(stream: ServerHttp2Stream, head: RequestHead, err: WeftError): void {
  if (stream.destroyed || stream.closed) return;
  if (stream.headersSent) {
    stream.close(NGHTTP2_INTERNAL_ERROR);
    return;
  }
  if (head.grpc) {
    stream.respond(grpcErrorHeaders(err), { endStream: true });
    return;
  }
  const body = `${err.message}\n`;
  stream.respond({
    ':status': err.httpStatus,
    ...proxyErrorHeaders(err),
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
  });
  stream.end(body);
}

/** Resets a stream the client no longer wants. */
export function cancelH2(stream: { close(code: number): void; destroyed: boolean }): void {
  if (!stream.destroyed) stream.close(NGHTTP2_CANCEL);
}
