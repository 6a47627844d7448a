/** Sends a request to the next hop over HTTP/1.1, on a pool of keep-alive connections (h1-client.ts). */
import { ConnectError, PeerError, WeftError } from '../../lib/errors.js';
import type { Connector, ConnectTarget } from '../tcp/connect.js';
import { meshTlsFailure } from '../tls/mesh-connector.js';
import type { Send } from './exchange.js';
import { H1Client, RequestFailure } from './h1-client.js';

const CONNECT_ERRNOS = new Set([
  'ECONNREFUSED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EADDRNOTAVAIL',
]);

/** Idle connections kept per origin. */
const MAX_IDLE_PER_ORIGIN = 64;

/**
 * The HTTP/1.1 client of one kind of next hop: its connections honour the connect timeout and,
 * to a mesh endpoint, speak mTLS with the identity discovery promised.
 */
export function newH1Client(connector: Connector, maxSocketsPerHost: number): H1Client {
  return new H1Client((t) => connector.connecting(t), maxSocketsPerHost, MAX_IDLE_PER_ORIGIN);
}

/** The origin key of `target`: a connection verified for one identity never serves another. */
export function originKey(target: ConnectTarget): string {
  return target.identity ? `${target.addr}|${target.identity}` : target.addr;
}

/** A Send over HTTP/1.1 to `target`. */
export function h1Send(client: H1Client, target: ConnectTarget): Send {
  const origin = originKey(target);
  return (head, body, hooks) =>
    client.request(origin, target, head, body, hooks).catch((err) => {
      // A pooled connection reset on reuse: most likely the server had closed it while idle, but
      // it may have received the request, so only idempotent methods (RFC 9110 §9.2.2) without
      // a body to replay are sent again. On a new connection: a server that is shutting down
      // closed the pool's other idle connections too.
      if (
        err instanceof RequestFailure &&
        err.stale &&
        !head.hasBody &&
        IDEMPOTENT.has(head.method.toUpperCase())
      )
        return client.request(origin, target, head, body, hooks, true).catch((again) => {
          throw weftError(target, again);
        });
      throw weftError(target, err);
    });
}

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

/** What a failed request tells the exchange: where it failed (connect, mTLS, the peer). */
function weftError(target: ConnectTarget, err: unknown): unknown {
  if (!(err instanceof RequestFailure)) return err;
  const cause = err.cause as NodeJS.ErrnoException;
  if (cause instanceof WeftError) return cause;
  const tls = target.identity ? meshTlsFailure(target.addr, cause) : undefined;
  if (tls) return tls;
  // Refused, unreachable, or reset before the connection (and its TLS handshake) was up: nothing
  // reached the server, so the balancer may penalise the endpoint at once and try another.
  if (err.beforeConnect || CONNECT_ERRNOS.has(cause.code ?? '')) return new ConnectError(target.addr, cause);
  return new PeerError(cause.message, cause);
}

export type { H1Client };
