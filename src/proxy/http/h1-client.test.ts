/**
 * The HTTP/1.1 client pool (h1-client.ts, through upstream-h1.ts's Send) against a real loopback
 * server: keep-alive reuse, one pool per identity, the per-origin connection limit with a queue,
 * the server's Keep-Alive timeout hint, recovery when the server closed an idle connection; and,
 * against scripted raw servers, the wire: trailers, close-delimited and HEAD bodies, truncated
 * and malformed responses, chunked request bodies, 100 Continue, header checks.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { PassThrough, Readable } from 'node:stream';
import { after, afterEach, before, test } from 'node:test';
import tls from 'node:tls';
import { closedPort } from '../../../test/support/closed-port.js';
import { BadRequestError, ConnectError, PeerError, ShuttingDownError } from '../../lib/errors.js';
import { isEndpointFailure } from '../balance/endpoint-balancer.js';
import { IdentityNotReadyError } from '../identity/identity-errors.js';
import { fullGc } from '../native-memory-gc.js';
import { type Connector, type ConnectTarget, newTcpConnector } from '../tcp/connect.js';
import type { RequestHead, SendHooks } from './exchange.js';
import { h1Send, newH1Client } from './upstream-h1.js';

const HOOKS: SendHooks = { onInformational() {}, requestTrailers: () => undefined, onCancel() {} };

/** Hooks that keep the cancel function the client registers, for the test to call. */
function cancellable(): { hooks: SendHooks; cancel: () => void } {
  let registered: (() => void) | undefined;
  return {
    hooks: { ...HOOKS, onCancel: (c) => (registered = c) },
    cancel: () => {
      assert.ok(registered, 'the client registered no cancel function');
      registered();
    },
  };
}

/** A client for `srv` (at most `maxSockets` connections to it), closed after the test. */
function sendTo(srv: { target: ConnectTarget }, maxSockets = 8) {
  return h1Send(testClient(maxSockets), srv.target);
}

/** Resolves when `body` closes; fails the test if it has not within 2 s. */
function closesSoon(body: NodeJS.ReadableStream): Promise<void> {
  const closed = new Promise<void>((r) => body.once('close', () => r()));
  return Promise.race([
    closed,
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error('the body never closed')), 2000)),
  ]);
}

let server: http.Server;
let port = 0;
/** Connections the server accepted. */
let accepted = 0;
/** Requests wait for this (the queue test holds them). */
let gate: Promise<void> = Promise.resolve();

before(async () => {
  server = http.createServer(async (req, res) => {
    await gate;
    res.end(`${req.method} ${req.url} ${req.headers['content-length'] ?? '-'}`);
  });
  server.on('connection', () => accepted++);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});

after(() => {
  server.closeAllConnections();
  server.close();
});

function head(method = 'GET', path = '/'): RequestHead {
  return {
    method,
    scheme: 'http',
    authority: `127.0.0.1:${port}`,
    path,
    headers: {},
    origProto: 'HTTP/1.1',
    hasBody: false,
    grpc: false,
    timeoutMs: 0,
  };
}

async function call(send: ReturnType<typeof h1Send>, h = head()): Promise<string> {
  const up = await send(h, null, HOOKS);
  assert.equal(up.status, 200);
  const chunks: Buffer[] = [];
  for await (const c of up.body) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString();
}

/** What each test made and did not close itself (clients, servers): closed after it, failed or not. */
const teardown: (() => void)[] = [];
afterEach(() => {
  for (const close of teardown.splice(0)) close();
});

/** A client (at most `maxSockets` connections per origin), destroyed after the test. */
function testClient(maxSockets: number, connector: Connector = newTcpConnector(1000)) {
  const client = newH1Client(connector, maxSockets);
  teardown.push(() => client.destroy());
  return client;
}

function target(identity?: string) {
  return { host: '127.0.0.1', port, addr: `127.0.0.1:${port}`, identity };
}

test('sequential requests share one keep-alive connection', async () => {
  const client = testClient(8);
  const send = h1Send(client, target());
  accepted = 0;
  for (let i = 0; i < 5; i++) assert.equal(await call(send, head('GET', `/${i}`)), `GET /${i} -`);
  assert.equal(accepted, 1);
  client.destroy();
});

test('a bodiless POST goes out with Content-Length: 0, as Node frames it', async () => {
  const client = testClient(8);
  assert.equal(await call(h1Send(client, target()), head('POST', '/p')), 'POST /p 0');
  client.destroy();
});

test('a connection made for one identity never serves another at the same address', async () => {
  const client = testClient(8);
  accepted = 0;
  await call(h1Send(client, target('spiffe://td/ns/a/sa/one')));
  await call(h1Send(client, target('spiffe://td/ns/a/sa/two')));
  await call(h1Send(client, target('spiffe://td/ns/a/sa/one')));
  assert.equal(accepted, 2);
  client.destroy();
});

test('past the per-origin limit requests wait for a connection, in order', async () => {
  const client = newH1Client(newTcpConnector(1000), 2);
  const send = h1Send(client, target());
  accepted = 0;
  let open!: () => void;
  gate = new Promise((r) => (open = r));
  const order: number[] = [];
  const all = [0, 1, 2, 3, 4].map((i) => call(send, head('GET', `/${i}`)).then(() => order.push(i)));
  // Let the two connections take their requests before the server answers.
  await new Promise((r) => setImmediate(r));
  open();
  await Promise.all(all);
  gate = Promise.resolve();
  assert.equal(accepted, 2);
  assert.deepEqual(
    [...order].sort((a, b) => a - b),
    [0, 1, 2, 3, 4],
  );
  assert.ok(order.indexOf(4) >= 2, `the last queued request was answered before the first ones: ${order}`);
  client.destroy();
});

test('a server announcing Keep-Alive: timeout=1 gets a new connection per request', async () => {
  // One second less Node's one-second margin leaves no time to reuse the connection.
  server.keepAliveTimeout = 1000;
  const client = testClient(8);
  const send = h1Send(client, target());
  accepted = 0;
  try {
    await call(send);
    await call(send);
    assert.equal(accepted, 2);
  } finally {
    server.keepAliveTimeout = 5000;
    client.destroy();
  }
});

test('an idle connection the server closed is replaced, not failed', async () => {
  const client = testClient(8);
  const send = h1Send(client, target());
  accepted = 0;
  await call(send);
  server.closeIdleConnections();
  assert.equal(await call(send, head('GET', '/after')), 'GET /after -');
  assert.equal(accepted, 2);
  client.destroy();
});

test('a queued request its client cancels leaves the queue at once; the others are still served', async () => {
  const client = testClient(1);
  const send = h1Send(client, target());
  let open!: () => void;
  gate = new Promise((r) => (open = r));
  const { hooks, cancel } = cancellable();
  try {
    const first = call(send, head('GET', '/first'));
    const queued = send(head('GET', '/queued'), null, hooks);
    const queuedOutcome = queued.then(
      () => 'answered',
      (err: Error) => err.message,
    );
    await new Promise((r) => setImmediate(r));
    cancel();
    // Settled while the only connection is still busy with /first (the gate is closed).
    assert.match(await queuedOutcome, /request cancelled/);
    open();
    assert.equal(await first, 'GET /first -');
    assert.equal(await call(send, head('GET', '/next')), 'GET /next -');
  } finally {
    gate = Promise.resolve();
    open?.();
    client.destroy();
  }
});

test('destroy() fails queued and later requests as shutting down (not an endpoint failure) instead of opening connections for them', async () => {
  const client = testClient(1);
  const send = h1Send(client, target());
  let open!: () => void;
  gate = new Promise((r) => (open = r));
  accepted = 0;
  try {
    const busy = send(head('GET', '/busy'), null, HOOKS).catch((err: Error) => err.message);
    const queued = send(head('GET', '/queued'), null, HOOKS).catch((err: Error) => err);
    // The busy request's connection is up (and held at the gate) before the pool closes.
    for (let i = 0; i < 200 && accepted < 1; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(accepted, 1);
    client.destroy();
    // A 503 the balancer does not count against the endpoint, as the proxy is what went away.
    const queuedErr = await queued;
    assert.ok(queuedErr instanceof ShuttingDownError, String(queuedErr));
    assert.equal(isEndpointFailure(queuedErr), false);
    assert.equal(typeof (await busy), 'string', 'the busy request failed with its connection');
    const later = await send(head('GET', '/later'), null, HOOKS).catch((err: Error) => err);
    assert.ok(later instanceof ShuttingDownError, String(later));
    assert.equal(accepted, 1, 'no connection was opened for the queued or the later request');
  } finally {
    gate = Promise.resolve();
    open?.();
  }
});

// ---- Wire behaviour of the client (h1-client.ts) against a scripted raw TCP server.

/**
 * A raw server, closed after the test: `reply` gets each request's head (and whatever body bytes
 * came with it) as text and the socket, and answers as it likes; with `everyChunk`, every chunk
 * read instead. Counts connections.
 */
async function rawServer(reply: (request: string, socket: net.Socket) => void, everyChunk = false) {
  const sockets = new Set<net.Socket>();
  let connections = 0;
  const srv = net.createServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let buffered = '';
    socket.on('data', (d) => {
      buffered += d.toString('latin1');
      if (!everyChunk && buffered.indexOf('\r\n\r\n') < 0) return;
      const request = buffered;
      buffered = '';
      reply(request, socket);
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const p = (srv.address() as AddressInfo).port;
  teardown.push(() => {
    for (const s of sockets) s.destroy();
    srv.close();
  });
  return { target: { host: '127.0.0.1', port: p, addr: `127.0.0.1:${p}` }, connections: () => connections };
}

async function readAll(body: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of body) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString();
}

test('chunked responses keep their trailers; repeated fields join as node:http joins them', async () => {
  const srv = await rawServer((_req, s) =>
    s.write(
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nVary: x\r\nVary: y\r\n' +
        'Content-Type: text/plain\r\nContent-Type: text/html\r\nTrailer: grpc-status\r\n\r\n' +
        '5\r\nhello\r\n0\r\ngrpc-status: 0\r\n\r\n',
    ),
  );
  const up = await sendTo(srv)(head(), null, HOOKS);
  assert.deepEqual(up.headers['set-cookie'], ['a=1', 'b=2']);
  assert.equal(up.headers.vary, 'x, y');
  assert.equal(up.headers['content-type'], 'text/plain', 'the first copy wins, as in node:http');
  assert.equal(up.headers['transfer-encoding'], undefined, 'hop-by-hop');
  assert.equal(await readAll(up.body), 'hello');
  assert.deepEqual(up.trailers(), { 'grpc-status': '0' });
});

test('a body delimited by the close is complete, and the connection is not reused', async () => {
  const srv = await rawServer((_req, s) =>
    s.end('HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end'),
  );
  const send = sendTo(srv);
  for (const _ of [1, 2]) {
    const up = await send(head(), null, HOOKS);
    assert.equal(await readAll(up.body), 'until the end');
  }
  assert.equal(srv.connections(), 2);
});

test('the response to HEAD has no body, and its connection serves the next request', async () => {
  const srv = await rawServer((req, s) =>
    s.write(
      req.startsWith('HEAD')
        ? 'HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n'
        : 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok',
    ),
  );
  const send = sendTo(srv);
  const h = await send(head('HEAD'), null, HOOKS);
  assert.equal(h.headers['content-length'], '1000');
  assert.equal(await readAll(h.body), '');
  assert.equal(await readAll((await send(head(), null, HOOKS)).body), 'ok');
  assert.equal(srv.connections(), 1);
});

test('a response cut short ends its body without "end"; a malformed one fails as a peer error', async () => {
  const srv = await rawServer((req, s) => {
    if (req.includes('/short')) s.end('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this');
    else s.end('HTTP/1.1 2000 What\r\n\r\n');
  });
  const send = sendTo(srv);
  const up = await send(head('GET', '/short'), null, HOOKS);
  const ended = await new Promise<boolean>((resolve) => {
    up.body.on('data', () => {});
    up.body.once('close', () => resolve(up.body.readableEnded));
  });
  assert.equal(ended, false, 'a truncated body must not look complete');
  await assert.rejects(send(head('GET', '/bad'), null, HOOKS), (err: Error) => {
    assert.ok(err instanceof PeerError, String(err));
    assert.match(err.message, /invalid HTTP\/1 response/);
    return true;
  });
});

test('a body of unknown length goes out chunked; 100 Continue reaches the exchange', async () => {
  let seen = '';
  // Answers 100 Continue to the head, and 201 once the last chunk is in.
  const srv = await rawServer((req, s) => {
    if (seen === '') s.write('HTTP/1.1 100 Continue\r\n\r\n');
    seen += req;
    if (seen.endsWith('\r\n0\r\n\r\n')) s.write('HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n');
  }, true);
  let continued = 0;
  const body = Readable.from([Buffer.from('ab'), Buffer.alloc(0), Buffer.from('cde')]);
  const h = { ...head('POST', '/upload'), hasBody: true, headers: { expect: '100-continue' } };
  const up = await sendTo(srv)(h, body, {
    onInformational: (status) => status === 100 && continued++,
    requestTrailers: () => undefined,
    onCancel() {},
  });
  assert.equal(up.status, 201);
  assert.equal(continued, 1);
  assert.match(seen, /^POST \/upload HTTP\/1\.1\r\n/);
  assert.match(seen, /\r\ntransfer-encoding: chunked\r\n/);
  assert.ok(seen.endsWith('\r\n\r\n2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n'), JSON.stringify(seen));
});

test("a chunked body ends with the request's trailers; a field that cannot be written safely is left out", async () => {
  let seen = '';
  const srv = await rawServer((req, s) => {
    seen += req;
    if (/\r\n0\r\n(?:[^\r]+\r\n)*\r\n$/.test(seen)) s.write('HTTP/1.1 204 No Content\r\n\r\n');
  }, true);
  const h = { ...head('POST', '/upload'), hasBody: true };
  const trailers = { 'x-sum': 'abc', 'x-list': ['1', '2'], 'x-evil': 'a\r\nx-injected: 1', 'bad name': 'x' };
  const up = await sendTo(srv)(h, Readable.from([Buffer.from('ab')]), {
    ...HOOKS,
    requestTrailers: () => trailers,
  });
  assert.equal(up.status, 204);
  assert.ok(
    seen.endsWith('\r\n2\r\nab\r\n0\r\nx-sum: abc\r\nx-list: 1\r\nx-list: 2\r\n\r\n'),
    JSON.stringify(seen),
  );
});

test('a header value node:http would refuse is refused before anything is sent', async () => {
  const srv = await rawServer((_req, s) => s.end('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'));
  const client = testClient(8);
  const h = { ...head(), headers: { 'x-evil': 'a\r\nx-injected: 1' } };
  await assert.rejects(h1Send(client, srv.target)(h, null, HOOKS), (err: Error) => {
    // The client's fault, not the endpoint's: a 400, which no balancer counts against it.
    assert.ok(err instanceof BadRequestError, String(err));
    assert.match(err.message, /invalid character in header x-evil/);
    return true;
  });
  assert.equal(srv.connections(), 0);
});

// ---- Found by review: each of these failed before its fix.

/** An HTTP server, closed after the test, that answers `METHOD URL BODY-LENGTH BODY-START`, after `gate` opens. */
async function echoServer(gate: () => Promise<void> = async () => {}) {
  const srv = http.createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    await gate();
    const body = Buffer.concat(chunks);
    res.end(`${req.method} ${req.url} ${body.length} ${body.subarray(0, 8).toString()}`);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const p = (srv.address() as AddressInfo).port;
  teardown.push(() => {
    srv.closeAllConnections();
    srv.close();
  });
  return { target: { host: '127.0.0.1', port: p, addr: `127.0.0.1:${p}` } };
}

test('chunks larger than the socket buffer keep their framing, on a connection still connecting', async () => {
  const srv = await echoServer();
  const big = (c: string) => Buffer.alloc(20_000, c);
  const body = Readable.from([big('a'), big('b'), big('c')]);
  const up = await sendTo(srv)({ ...head('POST', '/big'), hasBody: true }, body, HOOKS);
  assert.equal(up.status, 200);
  assert.equal(await readAll(up.body), 'POST /big 60000 aaaaaaaa');
});

test('a request queued behind a response that closes its connection gets a new connection', async () => {
  const srv = await rawServer((req, s) =>
    s.end(`HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n${req[5]}!`),
  );
  const send = sendTo(srv, 1);
  const answers = await Promise.all(
    ['/a', '/b', '/c'].map(async (path) => readAll((await send(head('GET', path), null, HOOKS)).body)),
  );
  assert.deepEqual(answers, ['a!', 'b!', 'c!']);
  assert.equal(srv.connections(), 3);
});

test('a body left by an attempt that could not connect is sent whole by the next, even queued', async () => {
  let open!: () => void;
  const opened = new Promise<void>((r) => (open = r));
  const srv = await echoServer(() => opened);
  const client = testClient(1);
  const refused = await closedPort();
  try {
    // The only connection to the server is busy until the gate opens.
    const busy = h1Send(client, srv.target)(head('GET', '/busy'), null, HOOKS);
    const body = new PassThrough();
    const h = { ...head('POST', '/upload'), hasBody: true };
    const nowhere = { host: '127.0.0.1', port: refused, addr: `127.0.0.1:${refused}` };
    await assert.rejects(h1Send(client, nowhere)(h, body, HOOKS), /ECONNREFUSED|connect/);
    const retried = h1Send(client, srv.target)(h, body, HOOKS);
    body.end('hello'); // arrives while the retry waits for a connection
    await new Promise((r) => setTimeout(r, 50));
    open();
    assert.equal(await readAll((await busy).body), 'GET /busy 0 ');
    assert.equal(await readAll((await retried).body), 'POST /upload 5 hello');
  } finally {
    open();
  }
});

test('the method goes out upper-cased, as node:http sent it', async () => {
  let seen = '';
  const srv = await rawServer((req, s) => {
    seen = req;
    s.write('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n');
  });
  await sendTo(srv)(head('get', '/lower'), null, HOOKS);
  assert.match(seen, /^GET \/lower HTTP\/1\.1\r\n/);
});

test('closed connections are garbage: nothing keeps them (or their sockets) alive', async () => {
  const srv = await rawServer((_req, s) =>
    s.end('HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n'),
  );
  let collected = 0;
  const registry = new FinalizationRegistry(() => collected++);
  // Every socket the client opens is watched.
  const tcp = newTcpConnector(1000);
  const client = testClient(8, {
    connect: tcp.connect,
    connecting: (t) => {
      const socket = tcp.connecting(t);
      registry.register(socket, 0);
      return socket;
    },
  });
  const N = 50;
  for (let i = 0; i < N; i++) await readAll((await h1Send(client, srv.target)(head(), null, HOOKS)).body);
  await new Promise((r) => setTimeout(r, 50)); // let the last connection close
  const gc = fullGc();
  for (let i = 0; i < 50 && collected < N; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.ok(collected >= N - 1, `${collected} of ${N} closed connections' sockets collected`);
});

// ---- Found by the second review: each of these failed before its fix.

test('an empty body that ended during a failed attempt is sent (empty) by the next', async () => {
  const srv = await echoServer();
  const client = testClient(8);
  const port = await closedPort();
  const body = new PassThrough();
  body.end();
  const h = { ...head('POST', '/empty'), hasBody: true };
  const nowhere = { host: '127.0.0.1', port, addr: `127.0.0.1:${port}` };
  await assert.rejects(h1Send(client, nowhere)(h, body, HOOKS), /ECONNREFUSED|connect/);
  const up = await h1Send(client, srv.target)(h, body, HOOKS);
  assert.equal(await readAll(up.body), 'POST /empty 0 ');
});

test("an exception from the response body's consumer fails that connection, not the process", async () => {
  // The body comes after the head, once the consumer is reading: push() then runs the consumer's
  // 'data' handler synchronously, inside the parser's callback.
  const srv = await rawServer((_req, s) => {
    s.write('HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n');
    setTimeout(() => s.write('body'), 100);
  });
  const client = testClient(8);
  const up = await h1Send(client, srv.target)(head(), null, HOOKS);
  await new Promise<void>((resolve) => {
    up.body.on('data', () => {
      throw new Error('consumer bug');
    });
    up.body.once('close', () => resolve());
    up.body.on('error', () => {});
  });
  assert.equal(up.body.readableEnded, false);
  // The client still serves other requests.
  const again = await h1Send(client, srv.target)(head(), null, HOOKS);
  assert.equal(again.status, 200);
});

test('a client that leaves after the whole response arrived, before reading it, still closes the body', async () => {
  const srv = await rawServer((_req, s) => s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'));
  const client = testClient(8);
  const { hooks, cancel } = cancellable();
  const up = await h1Send(client, srv.target)(head(), null, hooks);
  await new Promise((r) => setTimeout(r, 20)); // the body is all in, unread
  const closed = closesSoon(up.body);
  cancel();
  await closed;
});

test('bytes after a response (a 204 with a body) fail it and not the request queued behind it', async () => {
  const srv = await rawServer((req, s) =>
    s.write(
      req.includes('/no-content')
        ? 'HTTP/1.1 204 No Content\r\nContent-Length: 4\r\n\r\nbody'
        : 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok',
    ),
  );
  const send = sendTo(srv, 1);
  const first = send(head('GET', '/no-content'), null, HOOKS).then((up) => up.status);
  const queued = send(head('GET', '/next'), null, HOOKS).then(async (up) => readAll(up.body));
  assert.equal(await first, 204);
  assert.equal(await queued, 'ok');
});

test('a reset during the TLS handshake is a connect failure (nothing reached the server)', async () => {
  const srv = net.createServer((s) => s.resetAndDestroy());
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  teardown.push(() => srv.close());
  const p = (srv.address() as AddressInfo).port;
  const tlsConnect = (t: { host: string; port: number }) =>
    tls.connect({ host: t.host, port: t.port, rejectUnauthorized: false });
  const client = testClient(8, {
    connect: async () => tlsConnect({ host: '127.0.0.1', port: p }),
    connecting: tlsConnect,
  });
  const target = { host: '127.0.0.1', port: p, addr: `127.0.0.1:${p}` };
  await assert.rejects(h1Send(client, target)(head(), null, HOOKS), ConnectError);
});

test('a 1xx response never has a body, whatever its fields say', async () => {
  const srv = await rawServer((_req, s) =>
    s.write(
      'HTTP/1.1 150 Whatever\r\nContent-Length: 5\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok',
    ),
  );
  const up = await sendTo(srv)(head(), null, HOOKS);
  assert.equal(up.status, 200);
  assert.equal(await readAll(up.body), 'ok');
});

// ---- Found by the third review: each of these failed before its fix.

test('a body delimited by the close and cut short by a reset does not look complete', async () => {
  const srv = await rawServer((_req, s) => {
    s.write('HTTP/1.1 200 OK\r\nConnection: close\r\n\r\npartial-');
    setTimeout(() => s.resetAndDestroy(), 50);
  });
  const up = await sendTo(srv)(head(), null, HOOKS);
  const ended = await new Promise<boolean>((resolve) => {
    up.body.on('data', () => {});
    up.body.on('error', () => {});
    up.body.once('close', () => resolve(up.body.readableEnded));
  });
  assert.equal(ended, false, 'a reset must not pass for the end of the body');
});

test('a response that came whole before the request body ended still closes when its client leaves', async () => {
  const srv = await rawServer((_req, s) =>
    s.write('HTTP/1.1 413 Too Large\r\nContent-Length: 4\r\n\r\nnope'),
  );
  const client = testClient(8);
  const { hooks, cancel } = cancellable();
  const body = new PassThrough();
  body.write('still uploading');
  try {
    const h = { ...head('POST', '/upload'), hasBody: true };
    const up = await h1Send(client, srv.target)(h, body, hooks);
    assert.equal(up.status, 413);
    await new Promise((r) => setTimeout(r, 20)); // all of it in, unread; the upload never ends
    const closed = closesSoon(up.body);
    cancel();
    await closed;
  } finally {
    body.destroy();
  }
});

test("a connector's stand-in socket fails the request with the connector's own error", async () => {
  const client = testClient(8, {
    connect: () => Promise.reject(new IdentityNotReadyError('spiffe://td/ns/a/sa/b')),
    connecting: () => {
      const standIn = new net.Socket();
      setImmediate(() => standIn.destroy(new IdentityNotReadyError('spiffe://td/ns/a/sa/b')));
      return standIn;
    },
  });
  const target = { host: '127.0.0.1', port: 1, addr: '127.0.0.1:1' };
  await assert.rejects(h1Send(client, target)(head(), null, HOOKS), IdentityNotReadyError);
});
