/** Sends a request to the next hop over a pooled HTTP/2 session. */
import http2, { type OutgoingHttpHeaders } from 'node:http2';
import { ConnectError, PeerError } from '../../lib/errors.js';
import type { ConnectTarget } from '../tcp/connect.js';
import type { RequestHead, Send, UpstreamResponse } from './exchange.js';
import type { H2Pool } from './h2-pool.js';
import { endToEndHeaders, type Headers, ORIG_PROTO_HEADER } from './headers.js';

const { NGHTTP2_CANCEL, NGHTTP2_REFUSED_STREAM } = http2.constants;

/**
 * A Send over HTTP/2 to `target`. With `markOrigProto`, an HTTP/1 request is tagged with
 * `weft-orig-proto` so the peer's inbound proxy restores HTTP/1 (the mesh transport).
 */
export function h2Send(pool: H2Pool, target: ConnectTarget, markOrigProto: boolean): Send {
  return (head, body, hooks) => {
    const attempt = (retriesLeft: number): Promise<UpstreamResponse> =>
      sendOnce(pool, target, head, body, hooks, markOrigProto).catch((err) => {
        // A stream the peer refused (GOAWAY while draining, stream limit) was never processed:
        // safe to send again on a fresh session, once, when there is no body to replay.
        if (retriesLeft > 0 && err instanceof RefusedStreamError && !body) return attempt(retriesLeft - 1);
        throw err instanceof RefusedStreamError ? new PeerError('stream refused') : err;
      });
    return attempt(1);
  };
}

class RefusedStreamError extends Error {}

function sendOnce(
  pool: H2Pool,
  target: ConnectTarget,
  head: RequestHead,
  body: import('node:stream').Readable | null,
  hooks: Parameters<Send>[2],
  markOrigProto: boolean,
): Promise<UpstreamResponse> {
  const pooled = pool.get(target);
  const headers: OutgoingHttpHeaders = {
    ':method': head.method,
    ':scheme': head.scheme,
    ':authority': head.authority,
    ':path': head.path,
    ...head.headers,
  };
  if (markOrigProto && head.origProto !== 'HTTP/2') headers[ORIG_PROTO_HEADER] = head.origProto;
  if (head.method === 'CONNECT') delete headers[':path'];
  return new Promise((resolve, reject) => {
    let stream: http2.ClientHttp2Stream;
    try {
      stream = pooled.session.request(headers, { endStream: !head.hasBody });
    } catch (err) {
      return reject(new PeerError(`cannot open stream: ${(err as Error).message}`, err));
    }
    let responded = false;
    let trailers: Headers | undefined;
    const onAbort = () => !stream.destroyed && stream.close(NGHTTP2_CANCEL);
    hooks.onCancel(onAbort);
    stream.on('continue', () => hooks.onContinue());
    stream.once('trailers', (t) => (trailers = endToEndHeaders(t)));
    stream.once('response', (h) => {
      responded = true;
      resolve({
        status: Number(h[':status']),
        headers: endToEndHeaders(h),
        body: stream,
        trailers: () => trailers,
      });
    });
    stream.on('error', (err) => {
      if (responded) return; // surfaces through the body stream
      // Refused (the peer is going away): it reports this as an error too, before 'close'.
      if (stream.rstCode === NGHTTP2_REFUSED_STREAM) return reject(new RefusedStreamError());
      reject(pooled.connected ? new PeerError(err.message, err) : asConnectError(target, err));
    });
    stream.once('close', () => {
      if (responded) return;
      if (stream.rstCode === NGHTTP2_REFUSED_STREAM) reject(new RefusedStreamError());
      else
        reject(
          pooled.connected
            ? new PeerError(`stream closed (code ${stream.rstCode})`)
            : asConnectError(target, undefined),
        );
    });
    if (head.hasBody && body) body.pipe(stream);
  });
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
