/**
 * The HTTP/1.1 client pool (h1-pool.ts, through upstream-h1.ts's Send) against a real loopback
 * server: keep-alive reuse, one pool per identity, the per-origin connection limit with a queue,
 * the server's Keep-Alive timeout hint, and recovery when the server closed an idle connection.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { newTcpConnector } from '../tcp/connect.js';
import type { RequestHead, SendHooks } from './exchange.js';
import { h1Send, newH1Agent } from './upstream-h1.js';

const HOOKS: SendHooks = { onContinue() {}, onCancel() {} };

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

function target(identity?: string) {
  return { host: '127.0.0.1', port, addr: `127.0.0.1:${port}`, identity };
}

test('sequential requests share one keep-alive connection', async () => {
  const agent = newH1Agent(newTcpConnector(1000), 8);
  const send = h1Send(agent, target());
  accepted = 0;
  for (let i = 0; i < 5; i++) assert.equal(await call(send, head('GET', `/${i}`)), `GET /${i} -`);
  assert.equal(accepted, 1);
  agent.destroy();
});

test('a bodiless POST goes out with Content-Length: 0, as Node frames it', async () => {
  const agent = newH1Agent(newTcpConnector(1000), 8);
  assert.equal(await call(h1Send(agent, target()), head('POST', '/p')), 'POST /p 0');
  agent.destroy();
});

test('a connection made for one identity never serves another at the same address', async () => {
  const agent = newH1Agent(newTcpConnector(1000), 8);
  accepted = 0;
  await call(h1Send(agent, target('spiffe://td/ns/a/sa/one')));
  await call(h1Send(agent, target('spiffe://td/ns/a/sa/two')));
  await call(h1Send(agent, target('spiffe://td/ns/a/sa/one')));
  assert.equal(accepted, 2);
  agent.destroy();
});

test('past the per-origin limit requests wait for a connection, in order', async () => {
  const agent = newH1Agent(newTcpConnector(1000), 2);
  const send = h1Send(agent, target());
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
  agent.destroy();
});

test('a server announcing Keep-Alive: timeout=1 gets a new connection per request', async () => {
  // One second less Node's one-second margin leaves no time to reuse the connection.
  server.keepAliveTimeout = 1000;
  const agent = newH1Agent(newTcpConnector(1000), 8);
  const send = h1Send(agent, target());
  accepted = 0;
  try {
    await call(send);
    await call(send);
    assert.equal(accepted, 2);
  } finally {
    server.keepAliveTimeout = 5000;
    agent.destroy();
  }
});

test('an idle connection the server closed is replaced, not failed', async () => {
  const agent = newH1Agent(newTcpConnector(1000), 8);
  const send = h1Send(agent, target());
  accepted = 0;
  await call(send);
  server.closeIdleConnections();
  assert.equal(await call(send, head('GET', '/after')), 'GET /after -');
  assert.equal(accepted, 2);
  agent.destroy();
});

test('a queued request its client cancels leaves the queue at once; the others are still served', async () => {
  const agent = newH1Agent(newTcpConnector(1000), 1);
  const send = h1Send(agent, target());
  let open!: () => void;
  gate = new Promise((r) => (open = r));
  let cancel!: () => void;
  const hooks: SendHooks = { onContinue() {}, onCancel: (c) => (cancel = c) };
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
    assert.match(await queuedOutcome, /socket hang up/);
    open();
    assert.equal(await first, 'GET /first -');
    assert.equal(await call(send, head('GET', '/next')), 'GET /next -');
  } finally {
    gate = Promise.resolve();
    open?.();
    agent.destroy();
  }
});

test('destroy() fails queued and later requests instead of opening connections for them', async () => {
  const agent = newH1Agent(newTcpConnector(1000), 1);
  const send = h1Send(agent, target());
  let open!: () => void;
  gate = new Promise((r) => (open = r));
  accepted = 0;
  try {
    const busy = send(head('GET', '/busy'), null, HOOKS).catch((err: Error) => err.message);
    const queued = send(head('GET', '/queued'), null, HOOKS).catch((err: Error) => err.message);
    // The busy request's connection is up (and held at the gate) before the pool closes.
    for (let i = 0; i < 200 && accepted < 1; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(accepted, 1);
    agent.destroy();
    assert.match(String(await queued), /connection pool is closed/);
    assert.equal(typeof (await busy), 'string', 'the busy request failed with its connection');
    const later = await send(head('GET', '/later'), null, HOOKS).catch((err: Error) => err.message);
    assert.match(String(later), /connection pool is closed/);
    assert.equal(accepted, 1, 'no connection was opened for the queued or the later request');
  } finally {
    gate = Promise.resolve();
    open?.();
  }
});
