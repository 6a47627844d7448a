/** Sends a request to the next hop over HTTP/1.1, on a pool of keep-alive connections. */
import http from 'node:http';
import type { Readable } from 'node:stream';
import { ConnectError, PeerError, WeftError } from '../../lib/errors.js';
import type { Connector, ConnectTarget } from '../tcp/connect.js';
import { meshTlsFailure } from '../tls/mesh-connector.js';
import type { RequestHead, Send, SendHooks, UpstreamResponse } from './exchange.js';
import { H1Pool, originKey, type PoolRequestOptions } from './h1-pool.js';
import { endToEndHeaders, type Headers } from './headers.js';

const CONNECT_ERRNOS = new Set([
  'ECONNREFUSED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EADDRNOTAVAIL',
]);

/**
 * A keep-alive connection pool whose connections honour the connect timeout and, to a mesh
 * endpoint, speak mTLS with the identity discovery promised (pooled per identity: h1-pool.ts).
 * Typed as the http.Agent it stands in for (ClientRequest takes it as one).
 */
export function newH1Agent(connector: Connector, maxSocketsPerHost: number): http.Agent {
  const pool = new H1Pool(
    // The connect target as the pool's origin gives it (the address as host:port).
    (t) =>
      connector.connecting({ host: t.host, port: t.port, addr: `${t.host}:${t.port}`, identity: t.identity }),
    maxSocketsPerHost,
    64,
  );
  return pool as unknown as http.Agent;
}

/** A Send over HTTP/1.1 to `target`. */
export function h1Send(agent: http.Agent, target: ConnectTarget): Send {
  const pool = agent as unknown as H1Pool;
  const origin = originKey(target);
  return (head, body, hooks) =>
    sendOnce(pool, origin, target, head, body, hooks).catch((err) => {
      // A pooled connection reset on reuse: most likely the server had closed it while idle, but
      // it may have received the request, so only idempotent methods (RFC 9110 §9.2.2) without
      // a body to replay are sent again. On a new connection: a server that is shutting down
      // closed the pool's other idle connections too.
      if (err instanceof StaleConnectionError && !head.hasBody && IDEMPOTENT.has(head.method))
        return sendOnce(pool, origin, target, head, body, hooks, true).catch((again) => {
          throw unwrapStale(again);
        });
      throw unwrapStale(err);
    });
}

function unwrapStale(err: unknown): unknown {
  return err instanceof StaleConnectionError ? err.cause : err;
}

class StaleConnectionError extends Error {}

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

function sendOnce(
  pool: H1Pool,
  origin: string,
  target: ConnectTarget,
  head: RequestHead,
  body: Readable | null,
  hooks: SendHooks,
  freshConnection = false,
): Promise<UpstreamResponse> {
  const headers = requestHeaders(head);
  // Outside the pool the connection closes after the response: say so (Node would, writing the
  // head lazily; a head given as a list is written before Node knows there is no agent).
  if (freshConnection) headers.push('Connection', 'close');
  return new Promise((resolve, reject) => {
    const options: http.RequestOptions & PoolRequestOptions = {
      host: target.host,
      port: target.port,
      weftOrigin: origin,
      weftTarget: target,
      method: head.method,
      path: head.path,
      // Node accepts [name, value, ...] and then skips its per-header setHeader bookkeeping.
      headers: headers as unknown as string[],
      setHost: false,
      // Outside the pool, on a connection made the pool's way (connect timeout, mTLS).
      ...(freshConnection
        ? { createConnection: () => pool.connectOutside(target) }
        : { agent: pool as unknown as http.Agent }),
    };
    const req = http.request(options);
    let responded = false;
    // After 'close' the socket may already serve another request from the pool: never touch it.
    let closed = false;
    hooks.onCancel(() => {
      if (closed) return;
      // Still queued for a connection: leave the queue now rather than when one frees up.
      if (!req.socket && !freshConnection && pool.cancelQueued(origin, req)) return;
      req.destroy();
    });
    req.on('continue', () => hooks.onContinue());
    req.once('response', (res) => {
      responded = true;
      resolve({
        status: res.statusCode ?? 502,
        headers: endToEndHeaders(res.headers),
        body: res,
        trailers: () => trailersOf(res),
      });
    });
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (responded) return;
      if (err instanceof WeftError) reject(err);
      else if (CONNECT_ERRNOS.has(err.code ?? '')) reject(new ConnectError(target.addr, err));
      else if (target.identity && meshTlsFailure(target.addr, err)) reject(meshTlsFailure(target.addr, err));
      else if (req.reusedSocket && err.code === 'ECONNRESET')
        reject(new StaleConnectionError('stale', { cause: new PeerError(err.message, err) }));
      else reject(new PeerError(err.message, err));
    });
    req.once('close', () => (closed = true));
    if (head.hasBody && body) body.pipe(req);
    else req.end();
  });
}

/** Methods Node frames as chunked by default: a bodiless one gets `Content-Length: 0` from Node. */
const CHUNKED_BY_DEFAULT = (method: string) =>
  !(
    method === 'GET' ||
    method === 'HEAD' ||
    method === 'DELETE' ||
    method === 'OPTIONS' ||
    method === 'TRACE' ||
    method === 'CONNECT'
  );

/**
 * The request's header fields as a flat [name, value, ...] list, in the order Node used to write
 * them from the header object this replaces: the end-to-end fields minus `te`, then Host, then
 * `Transfer-Encoding: chunked` for a body of unknown length. A bodiless POST-like request gets
 * the `Content-Length: 0` Node adds itself when the head is written lazily by `end()` (a head
 * given as a list is written at once, before Node knows the body is empty).
 */
function requestHeaders(head: RequestHead): (string | string[])[] {
  const out: (string | string[])[] = [];
  const h = head.headers;
  for (const name in h) {
    if (name === 'te' || name === 'host') continue;
    out.push(name, h[name]);
  }
  out.push('host', head.authority);
  if (h['content-length'] === undefined) {
    if (head.hasBody) out.push('transfer-encoding', 'chunked');
    else if (CHUNKED_BY_DEFAULT(head.method.toUpperCase())) out.push('Content-Length', '0');
  }
  return out;
}

function trailersOf(res: http.IncomingMessage): Headers | undefined {
  for (const _ in res.trailers) return endToEndHeaders(res.trailers);
  return undefined;
}
