/** Sends a request to the next hop over HTTP/1.1, on a pool of keep-alive connections. */
import http from 'node:http';
import type { Duplex, Readable } from 'node:stream';
import { ConnectError, PeerError, WeftError } from '../../lib/errors.js';
import type { Connector, ConnectTarget } from '../tcp/connect.js';
import { meshTlsFailure } from '../tls/mesh-connector.js';
import type { RequestHead, Send, SendHooks, UpstreamResponse } from './exchange.js';
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
 * Agent options carry the next hop's expected identity to createConnection (the mesh connector
 * dials mTLS with it) and into the pool key: a connection verified for one identity is never
 * reused for another at the same address.
 */
interface PoolOptions {
  host: string;
  port: number;
  weftIdentity?: string;
}

/** A keep-alive connection pool whose connections honour the connect timeout. */
export function newH1Agent(connector: Connector, maxSocketsPerHost: number): http.Agent {
  const agent = new http.Agent({
    keepAlive: true,
    maxSockets: maxSocketsPerHost,
    maxFreeSockets: 64,
    scheduling: 'lifo',
  });
  // Node's Agent calls createConnection(options) for each new socket, and pools by getName(options).
  const pool = agent as unknown as {
    createConnection: (o: PoolOptions) => unknown;
    getName: (o: PoolOptions) => string;
  };
  pool.createConnection = (o) =>
    connector.connecting({
      host: o.host,
      port: o.port,
      addr: `${o.host}:${o.port}`,
      identity: o.weftIdentity,
    });
  const nameOf = pool.getName.bind(agent);
  pool.getName = (o) => (o.weftIdentity ? `${nameOf(o)}:${o.weftIdentity}` : nameOf(o));
  return agent;
}

/** A Send over HTTP/1.1 to `target`. */
export function h1Send(agent: http.Agent, target: ConnectTarget): Send {
  return (head, body, hooks) =>
    sendOnce(agent, target, head, body, hooks).catch((err) => {
      // A pooled connection reset on reuse: most likely the server had closed it while idle, but
      // it may have received the request, so only idempotent methods (RFC 9110 §9.2.2) without
      // a body to replay are sent again. On a new connection: a server that is shutting down
      // closed the pool's other idle connections too.
      if (err instanceof StaleConnectionError && !head.hasBody && IDEMPOTENT.has(head.method))
        return sendOnce(agent, target, head, body, hooks, true).catch((again) => {
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
  agent: http.Agent,
  target: ConnectTarget,
  head: RequestHead,
  body: Readable | null,
  hooks: SendHooks,
  freshConnection = false,
): Promise<UpstreamResponse> {
  const headers: Headers = { ...head.headers, host: head.authority };
  delete headers.te;
  if (head.hasBody && headers['content-length'] === undefined) headers['transfer-encoding'] = 'chunked';
  return new Promise((resolve, reject) => {
    const options: http.RequestOptions & PoolOptions = {
      host: target.host,
      port: target.port,
      weftIdentity: target.identity,
      method: head.method,
      path: head.path,
      headers,
      setHost: false,
      // Outside the pool, on a connection made the pool's way (connect timeout, mTLS).
      ...(freshConnection ? { createConnection: () => poolConnection(agent, target) } : { agent }),
    };
    const req = http.request(options);
    let responded = false;
    // After 'close' the socket may already serve another request from the pool: never touch it.
    let closed = false;
    hooks.onCancel(() => !closed && req.destroy());
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

function poolConnection(agent: http.Agent, target: ConnectTarget): Duplex {
  return (agent as unknown as { createConnection: (o: PoolOptions) => Duplex }).createConnection({
    host: target.host,
    port: target.port,
    weftIdentity: target.identity,
  });
}

function trailersOf(res: http.IncomingMessage): Headers | undefined {
  for (const _ in res.trailers) return endToEndHeaders(res.trailers);
  return undefined;
}
