/**
 * A real HTTP app on 127.0.0.1:0 speaking HTTP/1.1 and h2c (prior knowledge) on one port, the way
 * a meshed app sees traffic from a proxy that may upgrade or keep the client's protocol.
 */
import { createHash } from 'node:crypto';
import * as http from 'node:http';
import * as http2 from 'node:http2';
import * as net from 'node:net';

/** A server started by these helpers: its port on 127.0.0.1, and `close()` that also cuts open connections. */
export interface TestServer {
  readonly port: number;
  close(): Promise<void>;
}

export interface HttpApp extends TestServer {
  /** Requests handled so far, over both protocols. */
  requestCount(): number;
}

/**
 * A request handler. On h2 connections Node's compatibility objects (`Http2ServerRequest`,
 * `Http2ServerResponse`, `httpVersion` "2.0") are passed; they offer the same calls used here.
 */
export type HttpAppHandler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

/** What the echo handler answers (JSON). `headers` includes h2 pseudo-headers on h2. */
export interface EchoBody {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  httpVersion: string;
  bodyBytes: number;
  bodySha256: string;
  trailers: Record<string, string | string[] | undefined>;
}

const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
const CHUNK_BYTES = 64 * 1024;
/** The `/bytes/<n>` body: byte i is `i & 0xff`; each 64 KiB chunk is this buffer (or a prefix). */
const PATTERN_CHUNK = Buffer.from(Array.from({ length: CHUNK_BYTES }, (_, i) => i & 0xff));

/** The sha256 (hex) of the first `n` bytes the app sends for `/bytes/<n>`. */
export function bytesPatternSha256(n: number): string {
  const hash = createHash('sha256');
  for (let left = n; left > 0; left -= CHUNK_BYTES)
    hash.update(PATTERN_CHUNK.subarray(0, Math.min(left, CHUNK_BYTES)));
  return hash.digest('hex');
}

/**
 * Starts the dual-protocol app; `handler` defaults to `echoHandler`. The first bytes of each
 * connection decide: the h2 preface goes to an h2c server, anything else to an HTTP/1 server.
 */
export async function startHttpApp(handler: HttpAppHandler = echoHandler): Promise<HttpApp> {
  let requests = 0;
  const counted: HttpAppHandler = (req, res) => {
    requests++;
    handler(req, res);
  };
  // Large enough that the proxy, not the app, is what enforces a header limit in tests.
  const h1 = http.createServer({ maxHeaderSize: 256 * 1024 }, counted);
  const h2 = http2.createServer(
    { settings: { maxHeaderListSize: 256 * 1024 } },
    counted as unknown as Http2Handler,
  );
  h2.on('sessionError', () => {});
  const sockets = new Set<net.Socket>();
  const front = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const n = Math.min(head.length, H2_PREFACE.length);
      const isH2 = head.subarray(0, n).equals(H2_PREFACE.subarray(0, n));
      if (isH2 && n < H2_PREFACE.length) return; // not enough bytes to decide yet
      socket.off('data', onData);
      socket.pause();
      socket.unshift(head);
      if (isH2) {
        h2.emit('connection', socket); // the h2 session reads what is buffered in the socket
      } else {
        h1.emit('connection', socket);
        socket.resume(); // replays the buffered head through 'data' to the HTTP/1 parser
      }
    };
    socket.on('data', onData);
  });
  await new Promise<void>((resolve, reject) => {
    front.once('error', reject);
    front.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = front.address() as net.AddressInfo;
  return {
    port,
    requestCount: () => requests,
    close: () => closeServer(front, sockets),
  };
}

type Http2Handler = (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void;

/** Closes `server` after destroying every socket it accepted; resolves once it is closed. */
export function closeServer(server: net.Server, sockets: Set<net.Socket>): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    for (const s of sockets) s.destroy();
  });
}

/**
 * Reads the whole request body (hashing as it streams), then routes: `/status/<code>`,
 * `/slow/<ms>`, `/bytes/<n>`, `/trailers`; anything else (including `/continue`, where Node
 * answers `Expect: 100-continue` itself) gets 200 with an `EchoBody`.
 */
export function echoHandler(req: http.IncomingMessage, res: http.ServerResponse): void {
  readBody(req).then(
    (body) => route(req, res, body),
    () => res.destroy(),
  );
}

async function readBody(req: http.IncomingMessage): Promise<EchoBody> {
  const hash = createHash('sha256');
  let bodyBytes = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    hash.update(chunk);
    bodyBytes += chunk.length;
  }
  return {
    method: req.method ?? '',
    url: req.url ?? '',
    headers: req.headers,
    httpVersion: req.httpVersion,
    bodyBytes,
    bodySha256: hash.digest('hex'),
    trailers: { ...req.trailers },
  };
}

function route(req: http.IncomingMessage, res: http.ServerResponse, echo: EchoBody): void {
  const path = new URL(req.url ?? '/', 'http://app.invalid').pathname;
  const [, verb, arg] = path.split('/');
  const n = Number(arg);
  const counted = Number.isInteger(n) && n >= 0;
  if (verb === 'status' && counted && n >= 200 && n <= 599) {
    if (n === 204 || n === 304) res.writeHead(n).end();
    else sendJson(res, n, echo);
  } else if (verb === 'slow' && counted) {
    const timer = setTimeout(() => sendJson(res, 200, echo), n);
    res.on('close', () => clearTimeout(timer));
  } else if (verb === 'bytes' && counted) {
    sendPattern(res, n);
  } else if (verb === 'trailers') {
    const body = Buffer.from(JSON.stringify(echo));
    const checksum = createHash('sha256').update(body).digest('hex');
    // No content-length: HTTP/1.1 goes chunked, which is what carries trailers.
    res.writeHead(200, { 'content-type': 'application/json', trailer: 'x-checksum' });
    res.write(body);
    res.addTrailers({ 'x-checksum': checksum });
    res.end();
  } else {
    sendJson(res, 200, echo);
  }
}

function sendJson(res: http.ServerResponse, status: number, echo: EchoBody): void {
  const body = JSON.stringify(echo);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** Streams `n` pattern bytes in 64 KiB chunks, waiting for 'drain' whenever the socket is full. */
function sendPattern(res: http.ServerResponse, n: number): void {
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': n });
  let sent = 0;
  const writeMore = () => {
    while (sent < n) {
      if (res.destroyed) return;
      const chunk = PATTERN_CHUNK.subarray(0, Math.min(CHUNK_BYTES, n - sent));
      sent += chunk.length;
      if (!res.write(chunk)) return void res.once('drain', writeMore);
    }
    res.end();
  };
  writeMore();
}
