/**
 * Graceful shutdown of `weft proxy` (docs/proxy-contract.md, DESIGN.md §5): on SIGTERM or admin
 * `POST /shutdown` a proxy stops accepting at once (new connections are refused), reports not
 * ready, sends GOAWAY on its HTTP/2 sessions, lets every in-flight request finish, and exits 0
 * within the grace period; idle keep-alive connections do not hold it up.
 *
 * In-flight requests are held by the app until the test releases them, so "in flight while the
 * proxy shuts down" is a fact the test establishes, not a timing hope.
 */
import assert from 'node:assert/strict';
import * as http from 'node:http';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { after, before, describe, it, type TestContext } from 'node:test';
import { echoHandler, type HttpApp, startHttpApp } from './support/apps.js';
import { eventually } from './support/eventually.js';
import { type MeshPair, type ProxyProcess, startMeshPair } from './support/proxy-process.js';

const AUTHORITY = 'held.test:7000';
const GRACE_MS = 20_000;
const GRACE_ARGS = ['--shutdown-grace-ms', String(GRACE_MS)];
/** Every request the app receives under this path waits for `Gate.release()` before answering. */
const HOLD_PATH = '/hold/';
/** Under this path the app sends the head and half the body at once, the rest on release. */
const HOLD_BODY_PATH = '/hold-body/';
const WAIT = { timeoutMs: 20_000, intervalMs: 20 };

/** An app handler that holds `/hold/...` and `/hold-body/...` requests until released; anything else is echoed. */
class Gate {
  #held: { res: http.ServerResponse; body: string }[] = [];
  #open = false;

  readonly handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const url = req.url ?? '/';
    const bodyFirst = url.startsWith(HOLD_BODY_PATH);
    if (!url.startsWith(HOLD_PATH) && !bodyFirst) {
      echoHandler(req, res);
      return;
    }
    req.resume();
    req.once('end', () => {
      const body = JSON.stringify({ url });
      if (bodyFirst || this.#open) {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      }
      if (this.#open) return void res.end(body);
      if (bodyFirst) res.write(body.slice(0, 5));
      this.#held.push({ res, body: bodyFirst ? body.slice(5) : body });
    });
  };

  /** Requests waiting at the app right now. */
  get held(): number {
    return this.#held.filter((h) => !h.res.destroyed).length;
  }

  /** Finishes every held response (and answers any later request at once). */
  release(): void {
    this.#open = true;
    for (const { res, body } of this.#held.splice(0)) {
      if (res.destroyed) continue;
      if (!res.headersSent) {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      }
      res.end(body);
    }
  }

  /** Holds requests again (between tests). */
  close(): void {
    this.#open = false;
  }
}

interface Reply {
  status: number;
  body: string;
}

/**
 * One HTTP/1.1 request to `addr` for `AUTHORITY`, on its own connection unless `agent` is given;
 * `onHead` fires when the response head arrives.
 */
function h1Request(
  addr: string,
  path: string,
  agent: http.Agent | false = false,
  onHead: () => void = () => {},
): Promise<Reply> {
  const [host, port] = splitAddr(addr);
  return new Promise((resolve, reject) => {
    const req = http.get({ host, port, path, headers: { host: AUTHORITY }, agent });
    req.once('error', reject);
    req.once('response', (res) => {
      onHead();
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.once('error', reject);
      res.once('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
  });
}

/** One request as a new stream on `session`. */
function h2Request(session: http2.ClientHttp2Session, path: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':path': path, ':authority': AUTHORITY });
    let status = 0;
    let body = '';
    stream.setEncoding('utf8');
    stream.once('response', (h) => (status = Number(h[':status'])));
    stream.on('data', (c: string) => (body += c));
    stream.once('error', reject);
    // 'close', not 'end': a stream cut by a dying session still ends its readable side.
    stream.once('close', () => {
      if (status === 0 || stream.rstCode !== http2.constants.NGHTTP2_NO_ERROR)
        reject(new Error(`stream closed (code ${stream.rstCode}) after status ${status}`));
      else resolve({ status, body });
    });
  });
}

/** An h2c (prior knowledge) session that records whether a GOAWAY arrived. */
function h2Session(addr: string): { session: http2.ClientHttp2Session; goaway: () => boolean } {
  const session = http2.connect(`http://${addr}`);
  session.on('error', () => {}); // the peer's shutdown must not crash the test process
  let gotGoaway = false;
  session.once('goaway', () => (gotGoaway = true));
  return { session, goaway: () => gotGoaway };
}

/** Resolves 'refused' when a TCP connect to `addr` gets ECONNREFUSED, else how it went. */
function connectOutcome(addr: string): Promise<string> {
  const [host, port] = splitAddr(addr);
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (err: NodeJS.ErrnoException) =>
      resolve(err.code === 'ECONNREFUSED' ? 'refused' : String(err.code)),
    );
  });
}

/** `/ready` answers 503, or the admin port is already closed. */
async function assertNotReady(proxy: ProxyProcess): Promise<void> {
  let status: number;
  try {
    status = (await proxy.adminGet('/ready')).status;
  } catch (err) {
    // The admin listener is gone or closing: not ready either. Any other failure is a real one.
    const code = (err as { cause?: { code?: string } }).cause?.code;
    if (!['ECONNREFUSED', 'ECONNRESET', 'UND_ERR_SOCKET'].includes(code ?? '')) throw err;
    return;
  }
  assert.equal(status, 503);
}

/** The exit status, or a rejection if the process is still running `withinMs` from now. */
function exitWithin(proxy: ProxyProcess, withinMs: number) {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`proxy still running ${withinMs} ms later`)), withinMs);
  });
  return Promise.race([proxy.exited, late]).finally(() => clearTimeout(timer));
}

function splitAddr(addr: string): [string, number] {
  const at = addr.lastIndexOf(':');
  return [addr.slice(0, at), Number(addr.slice(at + 1))];
}

function mustAddr(addr: string | undefined, what: string): string {
  assert.ok(addr, `no ${what} address`);
  return addr;
}

describe('graceful shutdown', () => {
  const gate = new Gate();
  let app: HttpApp;
  /** Closed after each test, whatever happened in it. */
  const cleanups: (() => unknown)[] = [];

  before(async () => {
    app = await startHttpApp(gate.handler);
  });
  after(async () => {
    gate.release();
    await app?.close();
  });

  async function runCleanups(): Promise<void> {
    gate.release();
    for (const c of cleanups.splice(0).reverse()) await c();
    gate.close();
  }

  async function meshPair(extraOutboundArgs: string[] = []): Promise<MeshPair> {
    const mesh = await startMeshPair({
      authority: AUTHORITY,
      appPort: app.port,
      inboundArgs: GRACE_ARGS,
      outboundArgs: [...GRACE_ARGS, ...extraOutboundArgs],
    });
    cleanups.push(() => mesh.cleanup());
    return mesh;
  }

  function trackSession(addr: string) {
    const s = h2Session(addr);
    cleanups.push(() => s.session.destroy());
    return s;
  }

  /**
   * Puts `h1Count` HTTP/1.1 requests (one connection each) and `h2Count` h2c streams (one
   * session) in flight to `addr`, and waits until all of them are held at the app.
   */
  async function inFlight(addr: string, h1Count: number, h2Count: number, prefix: string) {
    const before = gate.held;
    const h2 = trackSession(addr);
    const replies: Promise<Reply>[] = [];
    const paths: string[] = [];
    for (let i = 0; i < h1Count; i++) paths.push(`${HOLD_PATH}${prefix}-h1-${i}`);
    for (const p of paths) replies.push(h1Request(addr, p));
    for (let i = 0; i < h2Count; i++) {
      const p = `${HOLD_PATH}${prefix}-h2-${i}`;
      paths.push(p);
      replies.push(h2Request(h2.session, p));
    }
    let settled = 0;
    for (const r of replies)
      r.then(
        () => settled++,
        () => settled++,
      );
    await eventually(() => assert.equal(gate.held - before, h1Count + h2Count), WAIT);
    return { replies, paths, goaway: h2.goaway, settled: () => settled };
  }

  async function assertAllOk(replies: Promise<Reply>[], paths: string[]): Promise<void> {
    const results = await Promise.allSettled(replies);
    const failed = results
      .map((r, i) => ({ r, path: paths[i] }))
      .filter(({ r }) => r.status === 'rejected' || r.value.status !== 200);
    assert.deepEqual(
      failed.map(({ r, path }) => `${path}: ${r.status === 'rejected' ? String(r.reason) : r.value.status}`),
      [],
      'every in-flight request completes with 200',
    );
    for (const [i, r] of results.entries()) {
      assert.equal(r.status, 'fulfilled');
      assert.deepEqual(JSON.parse(r.value.body), { url: paths[i] });
    }
  }

  /** The checks every graceful shutdown must pass, once it has begun on `proxy`. */
  async function assertDraining(proxy: ProxyProcess, listeners: string[]): Promise<void> {
    for (const addr of listeners)
      await eventually(async () => assert.equal(await connectOutcome(addr), 'refused'), WAIT);
    await eventually(() => assertNotReady(proxy), WAIT);
  }

  async function assertCleanExit(t: TestContext, proxy: ProxyProcess, sinceMs: number): Promise<void> {
    const status = await exitWithin(proxy, GRACE_MS + 5_000);
    const tookMs = performance.now() - sinceMs;
    assert.deepEqual(status, { code: 0, signal: null });
    t.diagnostic(`exit 0 ${tookMs.toFixed(0)} ms after shutdown began (in-flight requests held part of it)`);
    assert.ok(tookMs < GRACE_MS, `exit took ${tookMs.toFixed(0)} ms, grace is ${GRACE_MS} ms`);
    const done = await proxy.waitForLog((e) => e.msg === 'shut down', 5_000);
    assert.equal(done.outcome, 'drained', 'every connection finished before the grace period ran out');
  }

  it('SIGTERM on the outbound proxy: 100 in-flight requests complete, new connections are refused, GOAWAY, exit 0', async (t) => {
    try {
      const mesh = await meshPair(['--upstream', `${AUTHORITY}=0`]);
      const out = mesh.outbound;
      const outbound = mustAddr(out.outbound, 'outbound');
      const upstream = mustAddr(out.upstreams[AUTHORITY], 'upstream binding');
      const flight = await inFlight(outbound, 50, 50, 'out');

      const sigtermAt = performance.now();
      out.child.kill('SIGTERM');
      await assertDraining(out, [outbound, upstream]);
      await eventually(() => assert.ok(flight.goaway(), 'the h2c client got GOAWAY'), WAIT);
      assert.equal(flight.settled(), 0, 'no in-flight request ended before the app answered');
      assert.equal(gate.held, 100);

      gate.release();
      await assertAllOk(flight.replies, flight.paths);
      await assertCleanExit(t, out, sigtermAt);
      // The inbound proxy behind it is untouched and still serves.
      assert.equal((await mesh.inbound.adminGet('/ready')).status, 200);
    } finally {
      await runCleanups();
    }
  });

  it('SIGTERM on the inbound proxy: in-flight mesh and direct requests complete, new connections are refused, GOAWAY, exit 0', async (t) => {
    try {
      const mesh = await meshPair();
      const inb = mesh.inbound;
      const inbound = mustAddr(inb.inbound, 'inbound');
      // Through the mesh (the outbound proxy's HTTP/2 session to the inbound proxy carries them)...
      const meshFlight = await inFlight(mustAddr(mesh.outbound.outbound, 'outbound'), 40, 40, 'mesh');
      // ...and from a peer speaking h2c straight to the inbound listener, to see its GOAWAY.
      const peerFlight = await inFlight(inbound, 0, 20, 'peer');
      assert.equal(gate.held, 100);

      const sigtermAt = performance.now();
      inb.child.kill('SIGTERM');
      await assertDraining(inb, [inbound]);
      await eventually(() => assert.ok(peerFlight.goaway(), 'the h2c peer got GOAWAY'), WAIT);
      assert.equal(meshFlight.settled() + peerFlight.settled(), 0, 'no in-flight request ended early');

      gate.release();
      await assertAllOk(meshFlight.replies, meshFlight.paths);
      await assertAllOk(peerFlight.replies, peerFlight.paths);
      await assertCleanExit(t, inb, sigtermAt);
    } finally {
      await runCleanups();
    }
  });

  it('idle keep-alive connections do not hold the outbound proxy for the grace period', async (t) => {
    try {
      const mesh = await meshPair();
      const out = mesh.outbound;
      const outbound = mustAddr(out.outbound, 'outbound');
      gate.release();
      // Five concurrent requests on a keep-alive agent leave five idle HTTP/1.1 connections...
      const agent = new http.Agent({ keepAlive: true, maxSockets: 5 });
      cleanups.push(() => agent.destroy());
      const replies = await Promise.all(
        Array.from({ length: 5 }, (_, i) => h1Request(outbound, `/echo/${i}`, agent)),
      );
      assert.deepEqual(
        replies.map((r) => r.status),
        [200, 200, 200, 200, 200],
      );
      // ...and an h2c session that has finished its stream stays open, idle.
      const h2 = trackSession(outbound);
      assert.equal((await h2Request(h2.session, '/echo/h2')).status, 200);
      assert.equal(idleSockets(agent), 5);

      const sigtermAt = performance.now();
      out.child.kill('SIGTERM');
      await assertIdleExit(t, out, sigtermAt);
      assert.ok(h2.goaway(), 'the idle h2c session got GOAWAY');
    } finally {
      await runCleanups();
    }
  });

  it('idle keep-alive connections do not hold the inbound proxy for the grace period', async (t) => {
    try {
      const mesh = await meshPair();
      const inb = mesh.inbound;
      gate.release();
      // The outbound proxy's pooled HTTP/2 session to the inbound proxy, idle after one request...
      assert.equal((await h1Request(mustAddr(mesh.outbound.outbound, 'outbound'), '/echo/mesh')).status, 200);
      // ...and a peer's idle HTTP/1.1 keep-alive connection straight to the inbound listener.
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      cleanups.push(() => agent.destroy());
      assert.equal((await h1Request(mustAddr(inb.inbound, 'inbound'), '/echo/peer', agent)).status, 200);
      assert.equal(idleSockets(agent), 1);

      const sigtermAt = performance.now();
      inb.child.kill('SIGTERM');
      await assertIdleExit(t, inb, sigtermAt);
    } finally {
      await runCleanups();
    }
  });

  it('a keep-alive connection whose response was under way at SIGTERM closes once it is complete', async (t) => {
    try {
      const mesh = await meshPair();
      const out = mesh.outbound;
      const outbound = mustAddr(out.outbound, 'outbound');
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      cleanups.push(() => agent.destroy());
      const path = `${HOLD_BODY_PATH}under-way`;
      let headSeen = false;
      const reply = h1Request(outbound, path, agent, () => (headSeen = true));
      await eventually(() => assert.ok(headSeen, 'response head received'), WAIT);

      out.child.kill('SIGTERM');
      await assertDraining(out, [outbound]);
      const releasedAt = performance.now();
      gate.release();
      const r = await reply;
      assert.equal(r.status, 200);
      assert.deepEqual(JSON.parse(r.body), { url: path });
      await assertIdleExit(t, out, releasedAt);
    } finally {
      await runCleanups();
    }
  });

  it('a client that closes before sending a byte is not kept half-open and does not hold shutdown', async (t) => {
    try {
      const mesh = await meshPair();
      const out = mesh.outbound;
      const [host, port] = splitAddr(mustAddr(out.outbound, 'outbound'));
      // Like a TCP health probe: connect, then close without a byte.
      for (let i = 0; i < 3; i++) {
        await new Promise<void>((resolve, reject) => {
          const s = net.connect({ host, port }, () => {
            s.destroy();
            resolve();
          });
          s.once('error', reject);
        });
      }
      await eventually(async () => {
        const text = await out.metrics();
        assert.match(text, /^protocol_detect_total\{direction="outbound",result="eof"\} 3$/m);
        assert.match(text, /^tcp_open_connections\{direction="outbound",peer="src"[^}]*\} 0$/m);
      }, WAIT);

      const sigtermAt = performance.now();
      out.child.kill('SIGTERM');
      await assertIdleExit(t, out, sigtermAt);
    } finally {
      await runCleanups();
    }
  });

  async function assertIdleExit(t: TestContext, proxy: ProxyProcess, sinceMs: number): Promise<void> {
    // Far below both the grace period and Node's 5 s keep-alive timeout, which would otherwise
    // be what finally closes an idle HTTP/1.1 connection.
    const status = await exitWithin(proxy, GRACE_MS + 5_000);
    const tookMs = performance.now() - sinceMs;
    assert.deepEqual(status, { code: 0, signal: null });
    t.diagnostic(`exit ${tookMs.toFixed(0)} ms after only idle connections were left (grace ${GRACE_MS} ms)`);
    assert.ok(tookMs < 3_000, `a proxy with only idle connections took ${tookMs.toFixed(0)} ms to exit`);
    const done = await proxy.waitForLog((e) => e.msg === 'shut down', 5_000);
    assert.equal(done.outcome, 'drained');
  }

  it('requests still in flight when the grace period ends are cut, and the proxy still exits 0', async (t) => {
    try {
      const shortGraceMs = 1_000;
      const mesh = await meshPair(['--shutdown-grace-ms', String(shortGraceMs)]);
      const out = mesh.outbound;
      const flight = await inFlight(mustAddr(out.outbound, 'outbound'), 5, 5, 'late');

      const sigtermAt = performance.now();
      out.child.kill('SIGTERM');
      const status = await exitWithin(out, shortGraceMs + 5_000);
      const tookMs = performance.now() - sigtermAt;
      t.diagnostic(`exit ${tookMs.toFixed(0)} ms after SIGTERM (grace ${shortGraceMs} ms)`);
      assert.deepEqual(status, { code: 0, signal: null });
      assert.ok(tookMs >= shortGraceMs - 50, `exited after ${tookMs.toFixed(0)} ms, before the grace period`);
      const done = await out.waitForLog((e) => e.msg === 'shut down', 5_000);
      assert.equal(done.outcome, 'expired');
      const results = await Promise.allSettled(flight.replies);
      assert.deepEqual(
        results.map((r) => r.status),
        Array(10).fill('rejected'),
        'the held requests were cut, not answered',
      );
    } finally {
      await runCleanups();
    }
  });

  it('admin POST /shutdown from loopback drains like SIGTERM; other methods are refused', async (t) => {
    try {
      const mesh = await meshPair();
      const out = mesh.outbound;
      const outbound = mustAddr(out.outbound, 'outbound');
      const admin = mustAddr(out.admin, 'admin');
      const refusedGet = await out.adminGet('/shutdown');
      assert.equal(refusedGet.status, 405);
      assert.equal((await out.adminGet('/ready')).status, 200, 'GET /shutdown did not start a shutdown');

      const flight = await inFlight(outbound, 10, 10, 'admin');
      const startedAt = performance.now();
      const res = await fetch(`http://${admin}/shutdown`, { method: 'POST' });
      assert.equal(res.status, 202);
      await res.text();
      await assertDraining(out, [outbound]);
      await eventually(() => assert.ok(flight.goaway(), 'the h2c client got GOAWAY'), WAIT);
      assert.equal(flight.settled(), 0);

      gate.release();
      await assertAllOk(flight.replies, flight.paths);
      await assertCleanExit(t, out, startedAt);
    } finally {
      await runCleanups();
    }
  });
});

function idleSockets(agent: http.Agent): number {
  return Object.values(agent.freeSockets).reduce((n, list) => n + (list?.length ?? 0), 0);
}
