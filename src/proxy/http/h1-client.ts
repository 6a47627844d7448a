/**
 * The proxy's HTTP/1.1 client: keep-alive connections per origin, each read by Node's own
 * parser (llhttp, h1-parser.ts) and written as plain bytes, without node:http's ClientRequest,
 * IncomingMessage and Agent. Why: they were most of a Node proxy's cost per request. In the
 * shared bench (two hops, mTLS between them, 2026-11-26), a throwaway proxy made of a node:http
 * server and this kind of client used 107 µs of CPU per request where the naive node:http
 * proxy used 232 µs in the same run; Weft's HTTP/1 path went from 181-201 to 169-171 µs (its
 * pool had already replaced the Agent).
 *
 * What node:http's client did and this keeps: one pool per origin (the address, plus the
 * identity the mesh connector verifies, so a connection verified for one identity never serves
 * another), at most `maxSockets` connections per origin with further requests queued in order,
 * idle connections reused last-in first-out, at most `maxIdle` kept, unreferenced while idle,
 * closed before the server's `Keep-Alive: timeout=N` runs out (a second early), and never
 * reused after a response that did not allow it (HTTP/1.0, `Connection: close`) or after a
 * response that came before the whole request was sent. Header fields are checked as node:http
 * checks them; responses are parsed with its limits (llhttp, --max-http-header-size).
 */
import type net from 'node:net';
import { Readable } from 'node:stream';
import { BadRequestError, PeerError, ShuttingDownError } from '../../lib/errors.js';
import type { ConnectTarget } from '../tcp/connect.js';
import type { RequestHead, SendHooks, UpstreamResponse } from './exchange.js';
import { HTTPParser, type LlhttpParser, type OnHeadersComplete } from './h1-parser.js';
import { endToEndHeaders, type Headers, headersFromRaw, NO_FIELDS } from './headers.js';

/** Node lets an idle connection expire a second before the server's announced keep-alive timeout. */
const KEEP_ALIVE_HINT_MARGIN_MS = 1000;
const TCP_KEEPALIVE_DELAY_MS = 1000;

/** How a request failed before its response head arrived; upstream-h1.ts turns it into a WeftError. */
export class RequestFailure extends Error {
  constructor(
    override readonly cause: unknown,
    /** The connection was reused from the pool and nothing came back: the server may have closed it idle. */
    readonly stale: boolean,
    /** The connection (or its TLS handshake) never completed: nothing reached the server. */
    readonly beforeConnect = false,
  ) {
    super('request failed', { cause });
  }
}

interface Origin {
  readonly key: string;
  readonly target: ConnectTarget;
  readonly idle: Connection[];
  readonly waiting: Exchange[];
  /** Open connections (connecting, busy or idle). */
  size: number;
}

/** One request and its response on one connection. */
class Exchange {
  conn: Connection | null = null;
  res: ResponseBody | null = null;
  trailers: Headers | undefined = undefined;
  reused = false;
  requestDone = false;
  responseDone = false;
  settled = false;
  keepAlive = false;
  keepAliveHint: string | undefined = undefined;
  /** Stops reading the request body (its connection is gone). */
  detachBody: (() => void) | null = null;

  /** Upper-cased, as node:http's client sent it (an HTTP/2 client may send `get`). */
  readonly method: string;

  constructor(
    readonly head: RequestHead,
    readonly body: Readable | null,
    readonly hooks: SendHooks,
    readonly fresh: boolean,
    readonly resolve: (res: UpstreamResponse) => void,
    readonly reject: (err: unknown) => void,
  ) {
    this.method = head.method.toUpperCase();
  }

  fail(err: unknown): void {
    if (this.settled) return;
    this.settled = true;
    this.reject(err);
  }

  response(status: number, headers: Headers, res: ResponseBody): void {
    if (this.settled) return;
    this.settled = true;
    this.res = res;
    this.resolve({ status, headers, body: res, trailers: () => this.trailers });
  }
}

/** A response body: pauses its connection when the consumer is behind, resumes it on demand. */
class ResponseBody extends Readable {
  conn: Connection | null;
  constructor(conn: Connection) {
    super();
    this.conn = conn;
  }
  override _read(): void {
    const socket = this.conn?.socket;
    if (socket?.isPaused()) socket.resume();
  }
  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    // The consumer gave up before the end: the rest of the response cannot be skipped cheaply.
    if (this.conn && !this.readableEnded) this.conn.socket.destroy();
    this.conn = null;
    // As IncomingMessage: the error is emitted only to a listener; 'close' before 'end' tells the rest.
    cb(this.listenerCount('error') > 0 ? err : null);
  }
}

interface Connection {
  readonly socket: net.Socket;
  readonly parser: LlhttpParser;
  readonly client: H1Client;
  /** Null outside the pool (a fresh connection for one request, closed after it). */
  readonly origin: Origin | null;
  ex: Exchange | null;
  /** Fields of a head that came in parts, or trailers. */
  fields: string[];
  /** Some of the current response arrived. */
  received: boolean;
  /** Connected (TCP, and the TLS handshake when there is one): a failure before is a connect failure. */
  connected: boolean;
  error: Error | undefined;
}

interface ParserWithConn extends LlhttpParser {
  conn: Connection;
}

export class H1Client {
  readonly #connect: (target: ConnectTarget) => net.Socket;
  readonly #maxSockets: number;
  readonly #maxIdle: number;
  readonly #origins = new Map<string, Origin>();
  readonly #connections = new Set<Connection>();
  #destroyed = false;

  constructor(connect: (target: ConnectTarget) => net.Socket, maxSockets: number, maxIdle: number) {
    this.#connect = connect;
    this.#maxSockets = maxSockets;
    this.#maxIdle = maxIdle;
  }

  /**
   * Sends `head` and `body` to `target` (pooled under `originKey`); resolves with the response
   * head, rejects with a RequestFailure (or the connector's WeftError inside it). `fresh`: on a
   * new connection of its own, closed after the response.
   */
  request(
    originKey: string,
    target: ConnectTarget,
    head: RequestHead,
    body: Readable | null,
    hooks: SendHooks,
    fresh = false,
  ): Promise<UpstreamResponse> {
    return new Promise((resolve, reject) => {
      // The client's request, not the endpoint, is at fault: a 400 that no balancer counts.
      const problem = invalidHead(head);
      if (problem) return reject(new RequestFailure(new BadRequestError(problem), false));
      const ex = new Exchange(head, body, hooks, fresh, resolve, reject);
      hooks.onCancel(() => this.#cancel(ex, originKey));
      if (ex.settled) return;
      if (this.#destroyed) return ex.fail(new RequestFailure(new ShuttingDownError(), false));
      if (fresh) return this.#start(this.#open(null, target), ex);
      let origin = this.#origins.get(originKey);
      if (!origin) {
        origin = { key: originKey, target, idle: [], waiting: [], size: 0 };
        this.#origins.set(originKey, origin);
      }
      let conn = origin.idle.pop();
      while (conn && !reusable(conn.socket)) {
        conn.socket.destroy(); // the server closed it while idle
        conn = origin.idle.pop();
      }
      if (conn) {
        conn.socket.ref();
        conn.socket.setTimeout(0);
        ex.reused = true;
        this.#start(conn, ex);
      } else if (origin.size < this.#maxSockets) this.#start(this.#open(origin, target), ex);
      else origin.waiting.push(ex);
    });
  }

  /** Closes every connection, idle or busy, and fails queued and later requests (shutdown). */
  destroy(): void {
    this.#destroyed = true;
    for (const origin of this.#origins.values()) {
      for (const ex of origin.waiting.splice(0)) ex.fail(new RequestFailure(new ShuttingDownError(), false));
    }
    for (const conn of this.#connections) conn.socket.destroy();
  }

  #open(origin: Origin | null, target: ConnectTarget): Connection {
    const socket = this.#connect(target);
    socket.setKeepAlive(true, TCP_KEEPALIVE_DELAY_MS);
    socket.setNoDelay(true);
    const parser = new HTTPParser() as ParserWithConn;
    parser.initialize(HTTPParser.RESPONSE, {}, 0, HTTPParser.kLenientNone);
    parser[HTTPParser.kOnHeaders] = onFields;
    parser[HTTPParser.kOnHeadersComplete] = onHead;
    parser[HTTPParser.kOnBody] = onBody;
    parser[HTTPParser.kOnMessageComplete] = onMessageComplete;
    const conn: Connection = {
      socket,
      parser,
      client: this,
      origin,
      ex: null,
      fields: [],
      received: false,
      connected: false,
      error: undefined,
    };
    parser.conn = conn;
    if (origin) origin.size++;
    this.#connections.add(conn);
    socket.once('encrypted' in socket ? 'secureConnect' : 'connect', () => (conn.connected = true));
    socket.on('data', (data: Buffer) => onData(conn, data));
    socket.on('end', () => finishInput(conn));
    socket.on('error', (err: Error) => (conn.error ??= err));
    socket.on('timeout', () => conn.ex === null && socket.destroy());
    socket.on('close', () => this.#closed(conn));
    return conn;
  }

  #start(conn: Connection, ex: Exchange): void {
    conn.ex = ex;
    if (conn.fields.length > 0) conn.fields = []; // no allocation per request
    conn.received = false;
    ex.conn = conn;
    const { socket } = conn;
    // A socket going nowhere (the mesh connector's stand-in when it has no identity yet, destroyed
    // with the reason on a later turn): writing would fail first, with a less precise error.
    if (socket.pending && !socket.connecting) return;
    socket.write(serializeHead(ex.head, ex.method, ex.fresh), 'latin1');
    const body = ex.body;
    if (!ex.head.hasBody || !body) {
      ex.requestDone = true;
      return;
    }
    const chunked = ex.head.headers['content-length'] === undefined;
    const onData = (chunk: Buffer) => {
      if (chunk.length === 0) return; // an empty chunk would end the body
      let ok: boolean;
      if (chunked) {
        // All three parts, always: false from write() means "buffer full", not "not written".
        socket.cork();
        socket.write(`${chunk.length.toString(16)}\r\n`, 'latin1');
        socket.write(chunk);
        ok = socket.write('\r\n', 'latin1');
        socket.uncork();
      } else ok = socket.write(chunk);
      if (!ok) body.pause();
    };
    const onDrain = () => body.resume();
    const detach = () => {
      ex.detachBody = null;
      body.removeListener('data', onData);
      body.removeListener('end', onEnd);
      body.removeListener('close', onClose);
      body.removeListener('error', onClose);
      socket.removeListener('drain', onDrain);
      if (body.listenerCount('data') > 0) return;
      // Answered already: the rest of the body goes nowhere, but its client must get it off the
      // wire. Not answered: left flowing with no reader, its data would be lost before another
      // attempt (connect-retry.ts) reads it.
      if (ex.responseDone) body.resume();
      else body.pause();
    };
    const onEnd = () => {
      detach();
      if (conn.ex !== ex) return;
      if (chunked) socket.write(lastChunk(ex.hooks.requestTrailers()), 'latin1');
      ex.requestDone = true;
      if (ex.responseDone) this.#done(conn, ex);
    };
    // The body stopped short (its client went away): the request cannot be completed on this connection.
    const onClose = () => {
      detach();
      if (conn.ex === ex && !ex.requestDone) socket.destroy();
    };
    ex.detachBody = detach;
    // Empty, and ended during an earlier attempt: nothing more to send.
    if (body.readableEnded && !body.readableDidRead) {
      ex.detachBody = null;
      if (chunked) socket.write(lastChunk(ex.hooks.requestTrailers()), 'latin1');
      ex.requestDone = true;
      return;
    }
    // Gone or already read (by an earlier attempt): the request cannot be sent whole.
    if (body.readableEnded || body.destroyed) {
      ex.fail(new RequestFailure(new PeerError('the request body is no longer readable'), false));
      return void socket.destroy();
    }
    body.on('data', onData);
    body.once('end', onEnd);
    body.once('close', onClose);
    body.on('error', onClose);
    socket.on('drain', onDrain);
    body.resume(); // paused by an earlier attempt's detach, if any
  }

  /** A response head: resolve the request (1xx: pass it to the exchange and go on). */
  head(conn: Connection, raw: string[], status: number, keepAlive: boolean): number {
    const ex = conn.ex;
    if (!ex || ex.settled) {
      conn.socket.destroy();
      return 0;
    }
    if (status < 200) {
      if (status === 101) {
        ex.fail(new RequestFailure(new PeerError('unexpected 101 Switching Protocols'), false));
        conn.socket.destroy();
      } else
        ex.hooks.onInformational(status, status === 100 ? NO_FIELDS : endToEndHeaders(headersFromRaw(raw)));
      return 1; // no 1xx response has a body (node:http tells the parser the same)
    }
    ex.keepAlive = keepAlive;
    const fields = headersFromRaw(raw);
    const hint = fields['keep-alive'];
    if (typeof hint === 'string') ex.keepAliveHint = hint;
    ex.response(status, endToEndHeaders(fields), new ResponseBody(conn));
    return ex.method === 'HEAD' ? 1 : 0;
  }

  /** The response ended: the connection serves the next request once the request is all sent. */
  responseEnded(conn: Connection): void {
    const ex = conn.ex;
    if (!ex?.res) return; // the end of a 1xx response
    if (conn.fields.length > 0) {
      ex.trailers = endToEndHeaders(headersFromRaw(conn.fields));
      conn.fields = [];
    }
    ex.responseDone = true;
    const res = ex.res;
    res.conn = null;
    res.push(null);
    // A response before the whole request was sent: the rest cannot be skipped on this connection.
    if (!ex.requestDone) conn.socket.destroy();
    else this.#done(conn, ex);
  }

  #done(conn: Connection, ex: Exchange): void {
    conn.ex = null;
    ex.conn = null;
    const { socket, origin } = conn;
    if (socket.isPaused()) socket.resume();
    // Not reusable (Connection: close, HTTP/1.0, a close-delimited body, the server's FIN): a
    // queued request gets a new connection when this one has closed (#closed).
    if (!origin || this.#destroyed || !ex.keepAlive || !reusable(socket)) return void socket.destroy();
    // After the parser is done with this read: bytes after the response (a body on a 204, say)
    // or a FIN in it make the connection unusable, and must not fail the next request on it.
    queueMicrotask(() => this.#reuse(conn, origin, ex));
  }

  #reuse(conn: Connection, origin: Origin, ex: Exchange): void {
    const { socket } = conn;
    if (this.#destroyed || !reusable(socket)) return void socket.destroy();
    const next = origin.waiting.shift();
    if (next) {
      next.reused = true;
      this.#start(conn, next);
      return;
    }
    if (origin.idle.length >= this.#maxIdle) return void socket.destroy();
    let idleMs = 0;
    const seconds = ex.keepAliveHint && /^timeout=(\d+)/.exec(ex.keepAliveHint)?.[1];
    if (seconds) {
      idleMs = Number.parseInt(seconds, 10) * 1000 - KEEP_ALIVE_HINT_MARGIN_MS;
      if (idleMs <= 0) return void socket.destroy();
    }
    socket.unref();
    if (idleMs > 0) socket.setTimeout(idleMs);
    origin.idle.push(conn);
  }

  /** The parser rejected the response. */
  malformed(conn: Connection, err: Error): void {
    conn.error ??= new PeerError(`invalid HTTP/1 response: ${err.message}`, err);
    conn.socket.destroy();
  }

  #closed(conn: Connection): void {
    this.#connections.delete(conn);
    const ex = conn.ex;
    ex?.detachBody?.();
    // A body delimited by the close was completed by 'end' (finishInput) if the server closed
    // cleanly; any other close (a reset, our own destroy) leaves it cut short, and it says so.
    if (ex && !ex.responseDone) {
      if (ex.res) ex.res.destroy(conn.error ?? new Error('aborted'));
      else
        ex.fail(
          new RequestFailure(
            conn.error ?? hangUp(),
            ex.reused && !conn.received && isReset(conn.error),
            !conn.connected,
          ),
        );
    }
    conn.ex = null;
    // free() only ends its async-hooks life: close() deletes the native parser, which otherwise
    // keeps its JS object (and through it this connection, its socket and the client) alive.
    conn.parser.remove();
    conn.parser.free();
    conn.parser.close();
    const origin = conn.origin;
    if (!origin) return;
    origin.size--;
    const i = origin.idle.indexOf(conn);
    if (i >= 0) origin.idle.splice(i, 1);
    const next = this.#destroyed ? undefined : origin.waiting.shift();
    if (next) this.#start(this.#open(origin, origin.target), next);
    else if (origin.size === 0 && this.#origins.get(origin.key) === origin) this.#origins.delete(origin.key);
  }

  /** The client gave up: leave the queue, or close the connection the request is on. */
  #cancel(ex: Exchange, originKey: string): void {
    // All in but not forwarded (and its connection closed or serving another request): the body
    // must still close, or whoever waits on it (the balancer's count of requests in flight)
    // waits for good.
    if (ex.responseDone) return void ex.res?.destroy();
    const conn = ex.conn;
    if (conn) return void conn.socket.destroy();
    const waiting = this.#origins.get(originKey)?.waiting;
    const i = waiting ? waiting.indexOf(ex) : -1;
    if (i >= 0) waiting!.splice(i, 1);
    ex.fail(new RequestFailure(new Error('request cancelled'), false));
  }
}

function hangUp(): Error {
  return Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
}

function isReset(err: Error | undefined): boolean {
  if (!err) return true;
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ECONNRESET' || code === 'EPIPE';
}

function onData(conn: Connection, data: Buffer): void {
  if (conn.ex) conn.received = true;
  let r: ReturnType<LlhttpParser['execute']>;
  try {
    r = conn.parser.execute(data);
  } catch (err) {
    // Thrown by a callback (the exchange's 100 Continue hook, a body consumer's 'data' handler)
    // and rethrown by the parser, which is unusable from here on: this connection fails, the
    // proxy goes on.
    conn.error ??= err as Error;
    conn.socket.destroy();
    return;
  }
  if (typeof r !== 'number') conn.client.malformed(conn, r);
}

/** Open both ways: the server has not closed it (nor have we). */
function reusable(socket: net.Socket): boolean {
  return !socket.destroyed && socket.writable && !socket.readableEnded;
}

/** The server closed its side: a response delimited by the close is complete now. */
function finishInput(conn: Connection): void {
  if (!conn.ex || conn.ex.responseDone) return;
  let err: ReturnType<LlhttpParser['finish']>;
  try {
    err = conn.parser.finish();
  } catch (thrown) {
    err = thrown as Error; // from a callback, as in onData
  }
  if (err) conn.client.malformed(conn, err);
}

// Parser callbacks, shared by every connection (`this` is the parser).
function onFields(this: ParserWithConn, raw: string[]): void {
  for (let i = 0; i < raw.length; i++) this.conn.fields.push(raw[i]);
}
const onHead: OnHeadersComplete = function (
  this: LlhttpParser,
  _maj,
  _min,
  raw,
  _m,
  _u,
  status,
  _msg,
  _up,
  keep,
) {
  const conn = (this as ParserWithConn).conn;
  let fields = raw;
  if (fields === undefined) {
    fields = conn.fields;
    conn.fields = [];
  }
  return conn.client.head(conn, fields, status, keep);
};
function onBody(this: ParserWithConn, chunk: Buffer): void {
  const res = this.conn.ex?.res;
  if (res && !res.push(chunk)) this.conn.socket.pause();
}
function onMessageComplete(this: ParserWithConn): void {
  this.conn.client.responseEnded(this.conn);
}

/** What node:http would refuse to send, as its error says; undefined when the head is valid. */
function invalidHead(head: RequestHead): string | undefined {
  if (!TOKEN.test(head.method)) return `invalid method ${JSON.stringify(head.method)}`;
  if (INVALID_PATH.test(head.path)) return 'request path contains unescaped characters';
  if (INVALID_VALUE.test(head.authority)) return 'invalid character in the authority';
  const h = head.headers;
  for (const name in h) {
    if (!TOKEN.test(name)) return `invalid header name ${JSON.stringify(name)}`;
    const v = h[name];
    if (typeof v === 'string') {
      if (INVALID_VALUE.test(v)) return `invalid character in header ${name}`;
    } else for (const one of v) if (INVALID_VALUE.test(one)) return `invalid character in header ${name}`;
  }
  return undefined;
}

const TOKEN = /^[\^_`a-zA-Z\-0-9!#$%&'*+.|~]+$/;
const INVALID_VALUE = /[^\t\x20-\x7e\x80-\xff]/;
const INVALID_PATH = /[^\u0021-\u00ff]/;

/**
 * The end of a chunked body, with the request's trailer fields. A field node:http would refuse
 * in a head is left out, as it cannot be written safely; the others go as they came.
 */
function lastChunk(trailers: Headers | undefined): string {
  if (trailers === undefined) return '0\r\n\r\n';
  let s = '0\r\n';
  for (const name in trailers) {
    if (!TOKEN.test(name)) continue;
    const v = trailers[name];
    for (const value of typeof v === 'string' ? [v] : v)
      if (!INVALID_VALUE.test(value)) s += `${name}: ${value}\r\n`;
  }
  return `${s}\r\n`;
}

/** Methods node:http frames as chunked by default: a bodiless one gets `Content-Length: 0`, as node:http sent. */
function chunkedByDefault(method: string): boolean {
  return !(
    method === 'GET' ||
    method === 'HEAD' ||
    method === 'DELETE' ||
    method === 'OPTIONS' ||
    method === 'TRACE' ||
    method === 'CONNECT'
  );
}

/**
 * The request head as HTTP/1.1 text: the end-to-end fields minus `te`, then Host, then
 * `Transfer-Encoding: chunked` for a body of unknown length (or `Content-Length: 0` for a
 * bodiless POST-like request), then `Connection: close` on a connection outside the pool and
 * `keep-alive` on a pooled one.
 */
function serializeHead(head: RequestHead, method: string, close: boolean): string {
  let s = `${method} ${head.path} HTTP/1.1\r\n`;
  const h = head.headers;
  for (const name in h) {
    if (name === 'te' || name === 'host') continue;
    const v = h[name];
    if (typeof v === 'string') s += `${name}: ${v}\r\n`;
    else for (const one of v) s += `${name}: ${one}\r\n`;
  }
  s += `host: ${head.authority}\r\n`;
  if (h['content-length'] === undefined) {
    if (head.hasBody) s += 'transfer-encoding: chunked\r\n';
    else if (chunkedByDefault(method)) s += 'content-length: 0\r\n';
  }
  // As node:http's keep-alive client: said outright, for servers that still default to closing.
  s += close ? 'connection: close\r\n' : 'connection: keep-alive\r\n';
  return `${s}\r\n`;
}
