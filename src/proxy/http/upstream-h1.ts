/** Sends a request to the next hop over HTTP/1.1, on a pool of keep-alive connections. */
import http from 'node:http';
import type { Readable } from 'node:stream';
import { ConnectError, PeerError, WeftError } from '../../lib/errors.js';
import type { Connector, ConnectTarget } from '../tcp/connect.js';
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

/** A keep-alive connection pool whose connections honour the connect timeout. */
export function newH1Agent(connector: Connector, maxSocketsPerHost: number): http.Agent {
  const agent = new http.Agent({
    keepAlive: true,
    maxSockets: maxSocketsPerHost,
    maxFreeSockets: 64,
    scheduling: 'lifo',
  });
  // Node's Agent calls createConnection(options) for each new socket.
  (
    agent as unknown as { createConnection: (o: { host: string; port: number }) => unknown }
  ).createConnection = (o) =>
    connector.connecting({ host: o.host, port: o.port, addr: `${o.host}:${o.port}` });
  return agent;
}

/** A Send over HTTP/1.1 to `target`. */
export function h1Send(agent: http.Agent, target: ConnectTarget): Send {
  return (head, body, hooks) =>
    sendOnce(agent, target, head, body, hooks).catch((err) => {
      // A pooled connection reset on reuse: most likely the server had closed it while idle, but
      // it may have received the request, so only idempotent methods (RFC 9110 §9.2.2) without
      // a body to replay are sent again.
      if (err instanceof StaleConnectionError && !head.hasBody && IDEMPOTENT.has(head.method))
        return sendOnce(agent, target, head, body, hooks);
      throw err instanceof StaleConnectionError ? err.cause : err;
    });
}

class StaleConnectionError extends Error {}

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

function sendOnce(
  agent: http.Agent,
  target: ConnectTarget,
  head: RequestHead,
  body: Readable | null,
  hooks: SendHooks,
): Promise<UpstreamResponse> {
  const headers: Headers = { ...head.headers, host: head.authority };
  delete headers.te;
  if (head.hasBody && headers['content-length'] === undefined) headers['transfer-encoding'] = 'chunked';
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: target.host,
      port: target.port,
      method: head.method,
      path: head.path,
      headers,
      agent,
      setHost: false,
    });
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
      else if (req.reusedSocket && err.code === 'ECONNRESET')
        reject(new StaleConnectionError('stale', { cause: new PeerError(err.message, err) }));
      else reject(new PeerError(err.message, err));
    });
    req.once('close', () => (closed = true));
    if (head.hasBody && body) body.pipe(req);
    else req.end();
  });
}

function trailersOf(res: http.IncomingMessage): Headers | undefined {
  for (const _ in res.trailers) return endToEndHeaders(res.trailers);
  return undefined;
}
