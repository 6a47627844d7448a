/**
 * The HTTP/1 and HTTP/2 servers a listener hands detected connections to, shared by the
 * inbound and outbound stacks. Each request becomes one `runExchange`; connection-level parse
 * errors get a precise 400/431 and only that connection is closed.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import http2, { type Http2Session, type ServerHttp2Stream } from 'node:http2';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import {
  asWeftError,
  BadRequestError,
  HeadersTooLargeError,
  RequestHeadTimeoutError,
  type WeftError,
} from '../../lib/errors.js';
import { type ProxyContext, TLS_PLAINTEXT } from '../context.js';
import type { Direction } from '../metrics/proxy-metrics.js';
import type { PeerInfo } from '../tls/peer-info.js';
import { h1Downstream, h1RequestHead, rawH1ErrorResponse } from './downstream-h1.js';
import { h2Downstream, h2RequestHead } from './downstream-h2.js';
import { type RequestHead, type Routed, runExchange } from './exchange.js';
import { headWithoutUpgrade, isH2cUpgrade } from './upgrade-h2c.js';

export interface HttpHandlers {
  /** `peer`: the client of the connection, when the stack said who it is (the inbound proxy does). */
  route(head: RequestHead, peer?: PeerInfo): Routed | Promise<Routed>;
  /** An HTTP/1 Upgrade request (WebSocket): the handler owns `socket` from now on. */
  upgrade(
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    defaultAuthority: string | undefined,
    peer?: PeerInfo,
  ): void;
  /**
   * An HTTP/1 CONNECT request: the handler owns `socket` from now on, unless it throws a
   * WeftError synchronously to refuse it (the server then answers and counts it).
   */
  connect(req: IncomingMessage, socket: Duplex, head: Buffer): void;
}

export interface HttpServers {
  /**
   * Serves HTTP/1 on a socket; `defaultAuthority` stands in for a missing Host (CONNECT tunnels);
   * `peer` is passed to the handlers with every request of the connection.
   */
  serveH1(socket: net.Socket, defaultAuthority?: string, peer?: PeerInfo): void;
  serveH2(socket: net.Socket, defaultAuthority?: string, peer?: PeerInfo): void;
  /** Starts draining: GOAWAY on HTTP/2 sessions, idle HTTP/1 connections closed. */
  drain(): void;
}

/** A client gets this long to send its whole request head (Node checks every 30 s). */
const HEADERS_TIMEOUT_MS = 30_000;
const H2_SETTINGS = { maxConcurrentStreams: 1000, initialWindowSize: 1 << 20, enablePush: false };

export function newHttpServers(ctx: ProxyContext, direction: Direction, handlers: HttpHandlers): HttpServers {
  const { config, log, metrics } = ctx;
  const tunnelAuthority = new WeakMap<object, string>();
  // The client of each connection (HTTP/1 socket or HTTP/2 session), when the stack gave one.
  const peers = new WeakMap<object, PeerInfo>();
  const sessions = new Set<Http2Session>();
  const errorSeries = () => metrics.http(direction, '', '', TLS_PLAINTEXT);

  const isDraining = () => ctx.draining;
  // A response whose head went out keep-alive before draining began: close its connection
  // once the response is flushed (as Node does for `Connection: close`; a half-close would
  // wait for a client that may never read it), or it idles on and holds shutdown. One shared
  // listener: no closure per request.
  function closeIfDraining(this: ServerResponse) {
    if (ctx.draining) this.req.socket.destroySoon();
  }
  // The latest response on each HTTP/1 connection, for a declined h2c offer to wait on (below).
  const lastResponse = new WeakMap<object, ServerResponse>();
  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    lastResponse.set(req.socket, res);
    res.once('finish', closeIfDraining);
    let head: RequestHead;
    try {
      head = h1RequestHead(req, tunnelAuthority.get(req.socket), config.responseTimeoutMs);
    } catch (err) {
      return rejectH1(req, res, asWeftError(err));
    }
    void runExchange(
      h1Downstream(req, res, head, isDraining),
      handlers.route,
      errorSeries,
      peers.get(req.socket),
    );
  };
  const rejectH1 = (req: IncomingMessage, res: ServerResponse, err: WeftError) => {
    const down = h1Downstream(req, res, { hasBody: false } as RequestHead, () => true);
    const series = errorSeries();
    series.request.inc();
    series.response(err.httpStatus, undefined, err.reason).observe(0);
    down.fail(err);
  };

  const h1 = http.createServer({
    maxHeaderSize: config.maxHeaderBytes,
    requestTimeout: 0,
    headersTimeout: HEADERS_TIMEOUT_MS,
  });
  // This server never listens (our listeners hand it sockets), so Node never starts the
  // connection tracking it sets up on 'listening'. Without it close() cannot close idle
  // keep-alive connections when draining (they held shutdown until the keep-alive timeout),
  // and headersTimeout is not enforced.
  h1.emit('listening');
  h1.on('request', onRequest);
  h1.on('checkContinue', onRequest);
  h1.on('upgrade', (req, socket, head) => {
    if (!isH2cUpgrade(req))
      return handlers.upgrade(req, socket, head, tunnelAuthority.get(req.socket), peers.get(req.socket));
    // Declined: the same socket goes back to the parser with the request minus the offer. Node
    // gives it a new parser with its own response queue, so a response still in flight on the
    // connection (a pipelined offer, or curl's next request read before Node saw the last write
    // finish) must be done first: the new request's response would otherwise wait behind it for
    // good, and the keep-alive timeout would close the connection under it. The socket is
    // paused meanwhile; 'close' comes after Node has detached the finished response.
    const reparse = () => {
      if (socket.destroyed || !socket.writable) return;
      // The keep-alive timer the finished response armed belongs to the old parser, which would
      // have cleared it on this request's bytes: while a request is served there is none.
      const s = socket as Partial<net.Socket>;
      if (typeof s.setTimeout === 'function') s.setTimeout(h1.timeout);
      socket.unshift(Buffer.concat([headWithoutUpgrade(req), head]));
      h1.emit('connection', socket);
      socket.resume();
    };
    const inFlight = lastResponse.get(socket);
    if (inFlight && !inFlight.closed) inFlight.once('close', reparse);
    else reparse();
  });
  /** Answers, counts and closes a request no exchange took: a parse error, a refused CONNECT. */
  const rejectRaw = (socket: Duplex, err: WeftError) => {
    const series = errorSeries();
    series.request.inc();
    series.response(err.httpStatus, undefined, err.reason).observe(0);
    socket.end(rawH1ErrorResponse(err));
  };
  h1.on('connect', (req, socket, head) => {
    try {
      handlers.connect(req, socket, head);
    } catch (err) {
      rejectRaw(socket, asWeftError(err));
    }
  });
  h1.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    // A reset, or a client that closed in the middle of its request head (INVALID_EOF_STATE):
    // nobody waits for an answer, and a counted 400 would blame a request that was never sent.
    if (err.code === 'ECONNRESET' || err.code === 'HPE_INVALID_EOF_STATE' || !socket.writable)
      return socket.destroy();
    let weftErr: WeftError = new BadRequestError(`${err.code ?? 'parse error'}: ${err.message}`);
    if (err.code === 'HPE_HEADER_OVERFLOW') weftErr = new HeadersTooLargeError(config.maxHeaderBytes);
    if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') weftErr = new RequestHeadTimeoutError(HEADERS_TIMEOUT_MS);
    log.debug('bad request', { direction, code: err.code, error: err.message });
    rejectRaw(socket, weftErr);
  });

  const h2 = http2.createServer({ settings: H2_SETTINGS, maxSessionMemory: 64 });
  let pendingAuthority: string | undefined;
  let pendingPeer: PeerInfo | undefined;
  h2.on('session', (session) => {
    sessions.add(session);
    if (pendingAuthority) tunnelAuthority.set(session, pendingAuthority);
    if (pendingPeer) peers.set(session, pendingPeer);
    session.on('error', (err) => log.debug('h2 session error', { direction, error: err.message }));
    session.once('close', () => sessions.delete(session));
    session.once('connect', () => session.setLocalWindowSize(8 << 20));
    if (ctx.draining) session.close();
  });
  h2.on('stream', (stream: ServerHttp2Stream, headers) => {
    stream.on('error', () => {});
    let head: RequestHead;
    try {
      head = h2RequestHead(
        stream,
        headers,
        tunnelAuthority.get(stream.session as object),
        config.responseTimeoutMs,
      );
    } catch (err) {
      const e = asWeftError(err);
      const series = errorSeries();
      series.request.inc();
      series.response(e.httpStatus, undefined, e.reason).observe(0);
      return h2Downstream(stream, { hasBody: false, grpc: false, method: 'GET' } as RequestHead).fail(e);
    }
    void runExchange(
      h2Downstream(stream, head),
      handlers.route,
      errorSeries,
      peers.get(stream.session as object),
    );
  });

  return {
    serveH1(socket, defaultAuthority, peer) {
      // The client closed before sending a byte (detection saw the EOF): the HTTP server would
      // never see that 'end' and would keep the half-open socket forever, holding shutdown.
      if (socket.readableEnded) return void socket.destroy();
      if (defaultAuthority) tunnelAuthority.set(socket, defaultAuthority);
      if (peer) peers.set(socket, peer);
      h1.emit('connection', socket);
      socket.resume();
    },
    serveH2(socket, defaultAuthority, peer) {
      // HTTP/2 half-closes streams, never the connection: a client's FIN (curl just closes)
      // must end the session. Left half-open, the session and socket lived on forever and
      // tcp_open_connections never came down.
      socket.allowHalfOpen = false;
      pendingAuthority = defaultAuthority;
      pendingPeer = peer;
      try {
        h2.emit('connection', socket);
      } finally {
        pendingAuthority = undefined;
        pendingPeer = undefined;
      }
    },
    drain() {
      for (const s of sessions) s.close();
      // close() on a server that never listened only stops tracking and closes idle
      // connections; busy ones close after their response (draining sets Connection: close).
      h1.close(() => {});
    },
  };
}
