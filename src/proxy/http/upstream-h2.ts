/** Sends a request to the next hop over a pooled HTTP/2 session. */
import http2, { type OutgoingHttpHeaders } from 'node:http2';
import type { Readable } from 'node:stream';
import { ConnectError, PeerError } from '../../lib/errors.js';
import type { ConnectTarget } from '../tcp/connect.js';
import {
  type RequestHead,
  requestMayHaveTrailers,
  type Send,
  type SendHooks,
  type UpstreamResponse,
} from './exchange.js';
import type { H2Pool } from './h2-pool.js';
import { pump } from './h2-pump.js';
import { endToEndHeaders, type Headers, NO_FIELDS, ORIG_PROTO_HEADER } from './headers.js';

const { NGHTTP2_CANCEL, NGHTTP2_REFUSED_STREAM } = http2.constants;

/**
 * A Send over HTTP/2 to `target`. With `markOrigProto`, an HTTP/1 request is tagged with
 * `weft-orig-proto` so the peer's inbound proxy restores HTTP/1 (the mesh transport).
 */
export function h2Send(pool: H2Pool, target: ConnectTarget, markOrigProto: boolean): Send {
  return (head, body, hooks) => sendOnce(pool, target, head, body, hooks, markOrigProto, 1);
}

// Node copies the options of every request; sharing these saves building one per request.
const WITH_BODY = Object.freeze({ endStream: false });
// A body that may end with trailers (requestMayHaveTrailers). Waiting for them costs a write of its
// own per request (END_STREAM on an empty DATA frame when there are none, instead of on the last
// DATA), so only those requests wait.
const WITH_BODY_AND_TRAILERS = Object.freeze({ endStream: false, waitForTrailers: true });
const WITHOUT_BODY = Object.freeze({ endStream: true });

/**
 * One stream to the next hop. A stream the peer refused (GOAWAY while draining, stream limit)
 * was never processed: it is sent again on a fresh session, `retriesLeft` times, when there is
 * no body to replay. The retry happens inside this promise, so a request that is not refused
 * pays for no promise chain around it.
 */
function sendOnce(
  pool: H2Pool,
  target: ConnectTarget,
  head: RequestHead,
  body: Readable | null,
  hooks: SendHooks,
  markOrigProto: boolean,
  retriesLeft: number,
): Promise<UpstreamResponse> {
  const pooled = pool.get(target);
  const headers: OutgoingHttpHeaders = {
    ':method': head.method,
    ':scheme': head.scheme,
    ':authority': head.authority,
  };
  if (head.method !== 'CONNECT') headers[':path'] = head.path;
  const src = head.headers;
  for (const name in src) headers[name] = src[name];
  if (markOrigProto && head.origProto !== 'HTTP/2') headers[ORIG_PROTO_HEADER] = head.origProto;
  const trailersToo = requestMayHaveTrailers(head);
  return new Promise((resolve, reject) => {
    let stream: http2.ClientHttp2Stream;
    try {
      stream = pooled.session.request(
        headers,
        !head.hasBody ? WITHOUT_BODY : trailersToo ? WITH_BODY_AND_TRAILERS : WITH_BODY,
      );
    } catch (err) {
      return reject(new PeerError(`cannot open stream: ${(err as Error).message}`, err));
    }
    let settled = false;
    let trailers: Headers | undefined;
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      reject(err);
    };
    const refused = () => {
      if (settled) return;
      settled = true;
      if (retriesLeft > 0 && !body)
        resolve(sendOnce(pool, target, head, body, hooks, markOrigProto, retriesLeft - 1));
      else reject(new PeerError('stream refused'));
    };
    hooks.onCancel(() => !stream.destroyed && stream.close(NGHTTP2_CANCEL));
    // Every 1xx before the response comes as 'headers' (Node emits 'continue' for a 100 as well):
    // one listener for 100 Continue, 103 Early Hints and the rest. gRPC has no use for them (no
    // Expect, no hints), so its requests, the bulk of HTTP/2 traffic, get no listener.
    if (!head.grpc)
      stream.on('headers', (h) => {
        const status = Number(h[':status']);
        if (!settled && status >= 100 && status < 200)
          hooks.onInformational(status, status === 100 ? NO_FIELDS : endToEndHeaders(h));
      });
    // Each of these fires once per stream, and the stream is dropped after: `on`, no once-wrapper.
    stream.on('trailers', (t) => (trailers = endToEndHeaders(t)));
    stream.on('response', (h) => {
      if (settled) return;
      settled = true;
      resolve({
        status: Number(h[':status']),
        headers: endToEndHeaders(h),
        body: stream,
        trailers: () => trailers,
      });
    });
    stream.on('error', (err) => {
      if (settled) return; // after the response head: surfaces through the body stream
      // Refused (the peer is going away): it reports this as an error too, before 'close'.
      if (stream.rstCode === NGHTTP2_REFUSED_STREAM) return refused();
      fail(pooled.connected ? new PeerError(err.message, err) : asConnectError(target, err));
    });
    stream.on('close', () => {
      if (settled) return;
      if (stream.rstCode === NGHTTP2_REFUSED_STREAM) refused();
      else
        fail(
          pooled.connected
            ? new PeerError(`stream closed (code ${stream.rstCode})`)
            : asConnectError(target, undefined),
        );
    });
    if (head.hasBody && body) {
      if (trailersToo) stream.on('wantTrailers', () => sendRequestTrailers(stream, hooks.requestTrailers()));
      // Holding the first chunks back keeps END_STREAM on the last DATA frame; with trailers to
      // wait for, the stream ends with their frame instead, so there is nothing to keep.
      pump(body, stream, !trailersToo);
    }
  });
}

function sendRequestTrailers(stream: http2.ClientHttp2Stream, trailers: Headers | undefined): void {
  try {
    stream.sendTrailers(trailers ?? NO_FIELDS);
  } catch {
    // A field HTTP/2 refuses in trailers (a pseudo-header, a connection-specific one): the body
    // still ends, without them.
    if (!stream.destroyed) stream.sendTrailers(NO_FIELDS);
  }
}

function asConnectError(target: ConnectTarget, streamErr: unknown) {
  // A stream pending on a session whose connection failed is cancelled with
  // ERR_HTTP2_STREAM_CANCEL; the connection's own error (ECONNREFUSED, our connect timeout) is its cause.
  const err =
    streamErr instanceof Error && (streamErr as NodeJS.ErrnoException).code === 'ERR_HTTP2_STREAM_CANCEL'
      ? (streamErr.cause ?? streamErr)
      : streamErr;
  return err instanceof Error && 'code' in err && String(err.code).startsWith('WEFT_ERR')
    ? err
    : new ConnectError(target.addr, err);
}
