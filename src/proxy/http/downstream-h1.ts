/** The client's side of an exchange when the client speaks HTTP/1.x. */
import { type IncomingMessage, type ServerResponse, STATUS_CODES } from 'node:http';
import { finished } from 'node:stream';
import { BadRequestError, type WeftError } from '../../lib/errors.js';
import type { Downstream, RequestHead, UpstreamResponse } from './exchange.js';
import { endToEndHeaders, h1HasBody, isGrpc, parseTimeoutHeader, TIMEOUT_HEADER } from './headers.js';
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
  return {
    head,
    body: head.hasBody ? req : null,
    sendContinue: () => res.writeContinue(),
    forward: (up) => forwardToH1(res, head, up, draining()),
    fail: (err) => failH1(res, err),
    onAbort: (cb) => res.once('close', () => !res.writableFinished && cb()),
  };
}

function forwardToH1(
  res: ServerResponse,
  head: RequestHead,
  up: UpstreamResponse,
  close: boolean,
): Promise<void> {
  return new Promise((resolve, reject) => {
    if (close) res.shouldKeepAlive = false;
    res.writeHead(up.status, up.headers);
    // A client may close as soon as it has the bytes Content-Length promised, before the next
    // hop's end of stream has reached us: that response was delivered, not cut short.
    const declaredBytes = Number(up.headers['content-length'] ?? Number.NaN);
    let sentBytes = 0;
    up.body.on('data', (chunk: Buffer) => {
      sentBytes += chunk.length;
      if (!res.write(chunk)) {
        up.body.pause();
        res.once('drain', () => up.body.resume());
      }
    });
    up.body.once('end', () => {
      const trailers = up.trailers();
      if (trailers && head.method !== 'HEAD') res.addTrailers(trailers);
      res.end();
    });
    finished(up.body, (err) => err && reject(err));
    finished(res, (err) => {
      if ((!err && res.writableFinished) || (declaredBytes > 0 && sentBytes === declaredBytes)) resolve();
      else reject(err ?? new Error('client went away'));
    });
  });
}

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
