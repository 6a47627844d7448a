/** The client's side of an exchange when the client speaks HTTP/1.x. */
import { type IncomingMessage, type ServerResponse, STATUS_CODES } from 'node:http';
import type { Readable } from 'node:stream';
import { BadRequestError, type WeftError } from '../../lib/errors.js';
import { earlyHints } from './early-hints.js';
import type { Downstream, RequestHead, UpstreamResponse } from './exchange.js';
import {
  endToEndHeaders,
  type Headers,
  h1HasBody,
  isGrpc,
  parseTimeoutHeader,
  TIMEOUT_HEADER,
} from './headers.js';
import { proxyErrorHeaders } from './proxy-error-headers.js';

/**
 * Reads the request head. Absolute-form targets (forward-proxy requests, `HTTP_PROXY`) give the
 * authority and are rewritten to origin-form; otherwise Host does. Throws BadRequestError when
 * there is no authority at all.
 */
export function h1RequestHead(
  req: IncomingMessage,
  defaultAuthority: string | undefined,
  defaultTimeoutMs: number,
): RequestHead {
  let path = req.url ?? '/';
  let authority = req.headers.host ?? defaultAuthority;
  let scheme = 'http';
  if (!path.startsWith('/') && path !== '*') {
    let url: URL;
    try {
      url = new URL(path);
    } catch {
      throw new BadRequestError(`invalid request target ${JSON.stringify(path.slice(0, 100))}`);
    }
    if (url.protocol !== 'http:')
      throw new BadRequestError(`unsupported scheme ${url.protocol} in request target`);
    authority = url.host;
    scheme = 'http';
    path = `${url.pathname}${url.search}`;
  }
  if (!authority) throw new BadRequestError('request has no Host header');
  const headers = endToEndHeaders(req.headers);
  const timeoutMs = parseTimeoutHeader(req.headers[TIMEOUT_HEADER]) ?? defaultTimeoutMs;
  delete headers[TIMEOUT_HEADER];
  // An HTTP/1.0 client's 100-continue expectation is to be ignored (RFC 9110 §10.1.1); sent on
  // as HTTP/1.1 it would not be, and no 1xx may go back to that client.
  if (req.httpVersionMinor === 0) delete headers.expect;
  return {
    method: req.method ?? 'GET',
    scheme,
    authority,
    path,
    headers,
    origProto: req.httpVersionMinor === 0 ? 'HTTP/1.0' : 'HTTP/1.1',
    hasBody: h1HasBody(req.headers),
    grpc: isGrpc(req.headers),
    timeoutMs,
  };
}

/** Adapts a node:http server request/response pair. `draining` adds `Connection: close`. */
export function h1Downstream(
  req: IncomingMessage,
  res: ServerResponse,
  head: RequestHead,
  draining: () => boolean,
): Downstream {
  if (!head.hasBody) req.resume();
  return new H1Downstream(req, res, head, draining);
}

/**
 * One object per exchange, with a single 'close' listener on the response for both the abort
 * hook and the end of `forward` (no per-request closures, no `finished()`: end-of-stream
 * helpers add and remove about ten listeners per stream, measurable per request at mesh rates).
 */
class H1Downstream implements Downstream {
  readonly head: RequestHead;
  readonly body: Readable | null;
  readonly #req: IncomingMessage;
  readonly #res: ServerResponse;
  readonly #draining: () => boolean;
  #abort: (() => void) | undefined;
  #forwarding: ResponseCopy | undefined;
  #closed = false;

  constructor(req: IncomingMessage, res: ServerResponse, head: RequestHead, draining: () => boolean) {
    this.head = head;
    this.body = head.hasBody ? req : null;
    this.#req = req;
    this.#res = res;
    this.#draining = draining;
    res.once('close', () => this.#onClose());
  }

  /**
   * 100, 102 and 103 through node:http's own writers. None when:
   * - the client speaks HTTP/1.0 (RFC 9110 §15.2);
   * - the response waits behind an earlier one on a pipelined connection (no socket yet): node:http
   *   would queue the 1xx and then put the final head in front of it, inside the body's bytes.
   *   A 100 is kept for when the response gets the connection, unless its head is written by
   *   then: its client may be holding the body back until it comes;
   * - the status is another 1xx (104 and up): node:http has no public way to send those.
   * 102 and 103 are advisory: dropping one loses a hint, never the response.
   */
  sendInformational(status: number, headers: Headers): void {
    const res = this.#res;
    if (res.headersSent || this.#closed || this.head.origProto === 'HTTP/1.0') return;
    if (res.socket === null) {
      // node:http emits 'socket' as the connection passes to this response, before it writes
      // anything queued for it.
      if (status === 100) res.once('socket', () => this.sendInformational(100, headers));
      return;
    }
    if (status === 100) res.writeContinue();
    else if (status === 102) res.writeProcessing();
    else if (status === 103) {
      const hints = earlyHints(headers);
      if (hints === undefined) return;
      try {
        res.writeEarlyHints(hints);
      } catch {
        // A Link value node:http will not write: hints are advisory, the response goes on.
      }
    }
  }

  /** A chunked request's trailer section, which node:http has parsed by the body's end. */
  trailers(): Headers | undefined {
    // rawTrailers first: the `trailers` getter builds an object even when there are none.
    return this.#req.rawTrailers.length > 0 ? endToEndHeaders(this.#req.trailers) : undefined;
  }

  forward(up: UpstreamResponse): Promise<void> {
    if (this.#closed) return Promise.reject(new Error('client went away'));
    const copy = new ResponseCopy(this.#res, this.head, up, this.#draining());
    this.#forwarding = copy;
    return copy.done;
  }

  fail(err: WeftError): void {
    failH1(this.#res, err);
  }

  onAbort(cb: () => void): void {
    if (this.#closed) {
      if (!this.#res.writableFinished) cb();
    } else this.#abort = cb;
  }

  #onClose(): void {
    this.#closed = true;
    if (!this.#res.writableFinished) this.#abort?.();
    this.#forwarding?.responseClosed();
  }
}

/**
 * Copies a response from the next hop to the client. `done` resolves when the client has all of
 * it, rejects when the next hop's body fails or the client goes away first.
 */
class ResponseCopy {
  readonly done: Promise<void>;
  readonly #res: ServerResponse;
  readonly #head: RequestHead;
  readonly #up: UpstreamResponse;
  /** A client may close as soon as it has the bytes Content-Length promised. */
  readonly #declaredBytes: number;
  #sentBytes = 0;
  #settled = false;
  #resolve!: () => void;
  #reject!: (err: unknown) => void;

  constructor(res: ServerResponse, head: RequestHead, up: UpstreamResponse, close: boolean) {
    this.done = new Promise<void>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    this.#res = res;
    this.#head = head;
    this.#up = up;
    this.#declaredBytes = Number(up.headers['content-length'] ?? Number.NaN);
    if (close) res.shouldKeepAlive = false;
    res.writeHead(up.status, up.headers);
    // Write errors surface on the socket ('close'); this only keeps a late one from crashing.
    res.on('error', ignore);
    const body = up.body;
    body.on('data', (chunk: Buffer) => this.#onData(chunk));
    body.once('end', () => this.#onEnd());
    body.on('error', (err: Error) => this.#fail(err));
    body.once('close', () => {
      if (!body.readableEnded) this.#fail(new Error('Premature close'));
    });
  }

  #onData(chunk: Buffer): void {
    this.#sentBytes += chunk.length;
    if (!this.#res.write(chunk)) {
      const body = this.#up.body;
      body.pause();
      this.#res.once('drain', () => body.resume());
    }
  }

  #onEnd(): void {
    const trailers = this.#up.trailers();
    if (trailers && this.#head.method !== 'HEAD') this.#res.addTrailers(trailers);
    this.#res.end();
  }

  /** The response's 'close': after 'finish' when it was delivered. */
  responseClosed(): void {
    const res = this.#res;
    if (res.writableFinished || (this.#declaredBytes > 0 && this.#sentBytes === this.#declaredBytes)) {
      if (!this.#settled) {
        this.#settled = true;
        this.#resolve();
      }
    } else this.#fail(new Error('client went away'));
  }

  #fail(err: unknown): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#reject(err);
  }
}

function ignore(): void {}

function failH1(res: ServerResponse, err: WeftError): void {
  if (res.headersSent || res.destroyed) {
    res.destroy();
    return;
  }
  const body = `${err.message}\n`;
  res.writeHead(err.httpStatus, {
    ...proxyErrorHeaders(err),
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
}

/**
 * A raw HTTP/1 error response for connections the HTTP parser gave up on (bad request line,
 * smuggling ambiguity, oversized head): written on the socket, then the socket is closed.
 */
export function rawH1ErrorResponse(err: WeftError): string {
  const body = `${err.message}\n`;
  const headers = proxyErrorHeaders(err);
  const lines = Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('');
  return `HTTP/1.1 ${err.httpStatus} ${STATUS_CODES[err.httpStatus] ?? 'Error'}\r\n${lines}content-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`;
}
