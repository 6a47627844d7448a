/**
 * WebSocket and opaque TCP through two proxies: a `ws` client → outbound → inbound → a `ws` echo
 * app (origin-form with Host, and inside a CONNECT tunnel); raw TCP through an `--upstream`
 * binding to a meshed service (echo, half-close, 10 MiB); and server-first protocols, whose
 * banner must never wait on protocol detection (DESIGN.md §3).
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import * as http from 'node:http';
import * as net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { type ClientOptions, type RawData, WebSocket } from 'ws';
import {
  closeServer,
  startBannerServer,
  startTcpEcho,
  startWsEchoApp,
  type TestServer,
  tcpExchange,
  type WsEchoApp,
} from './support/apps.js';
import { sampleSum } from './support/prom-text.js';
import { type MeshPair, type ProxyProcess, startMeshPair, startProxy } from './support/proxy-process.js';

const MiB = 1024 * 1024;
/** What the issue asks of a server-first protocol through both proxies. */
const BANNER_BUDGET_MS = 100;
const BANNER = '220 weft.test ESMTP ready\r\n';

describe('WebSocket through two proxies', { timeout: 120_000 }, () => {
  const AUTHORITY = 'chat.weft.test:9000';
  let app: WsEchoApp;
  let pair: MeshPair;
  before(async () => {
    app = await startWsEchoApp();
    pair = await startMeshPair({ authority: AUTHORITY, appPort: app.port });
  });
  after(async () => {
    await pair?.cleanup();
    await app?.close();
  });

  it('echoes text, binary and 1 MiB messages, and completes the close handshake (origin-form)', async () => {
    const ws = await openWs(`ws://${pair.outbound.outbound}/chat?room=1`, { headers: { host: AUTHORITY } });
    await exerciseEcho(ws);
    const upgrade = app.upgrades.at(-1);
    assert.equal(upgrade?.host, AUTHORITY);
    assert.equal(upgrade?.upgrade, 'websocket');
  });

  it('does the same inside a CONNECT tunnel', async () => {
    const tunnel = await connectTunnel(pair.outbound.outbound!, AUTHORITY);
    const ws = await openWs(`ws://${AUTHORITY}/chat?room=2`, { createConnection: () => tunnel });
    await exerciseEcho(ws);
    assert.equal(app.upgrades.length, 2);
    assert.equal(app.upgrades[1]?.host, AUTHORITY);
  });

  it('counts the detections: HTTP/1 on each hop, including inside the tunnel', async () => {
    // Outbound: the plain connection, the CONNECT request, the HTTP/1 inside the tunnel.
    assert.equal(sampleSum(await pair.outbound.metrics(), 'protocol_detect_total', { result: 'http/1' }), 3);
    assert.equal(sampleSum(await pair.inbound.metrics(), 'protocol_detect_total', { result: 'http/1' }), 2);
  });
});

describe('opaque TCP through an upstream binding', { timeout: 120_000 }, () => {
  const AUTHORITY = 'echo.weft.test:9000';
  let app: TestServer;
  let pair: MeshPair;
  let port: number;
  before(async () => {
    app = await startTcpEcho();
    pair = await startMeshPair({
      authority: AUTHORITY,
      appPort: app.port,
      outboundArgs: ['--upstream', `${AUTHORITY}=0`],
    });
    port = portOf(pair.outbound.upstreams[AUTHORITY]);
  });
  after(async () => {
    await pair?.cleanup();
    await app?.close();
  });

  it('echoes bytes both ways, in turns', async () => {
    const socket = await connected(port);
    try {
      const reader = byteReader(socket);
      for (const word of ['one', 'two', 'three']) {
        socket.write(word);
        assert.equal((await reader.read(word.length)).toString(), word);
      }
    } finally {
      socket.destroy();
    }
  });

  it('keeps delivering after the client half-closes', async () => {
    const payload = randomBytes(MiB);
    // tcpExchange ends its side right after writing and reads until the peer's FIN.
    const got = await tcpExchange(port, { send: payload, timeoutMs: 30_000 });
    assert.equal(got.length, payload.length);
    assert.ok(got.equals(payload));
  });

  it('lets the app answer after the client half-closed (the FIN travels, the connection stays)', async () => {
    const summarizer = await startSummarizer();
    const pair2 = await startMeshPair({
      authority: 'sum.weft.test:9001',
      appPort: summarizer.port,
      outboundArgs: ['--upstream', 'sum.weft.test:9001=0'],
    });
    try {
      const sumPort = portOf(pair2.outbound.upstreams['sum.weft.test:9001']);
      const got = await tcpExchange(sumPort, { send: randomBytes(300_000), timeoutMs: 10_000 });
      assert.equal(got.toString(), 'received 300000 bytes before your FIN\n');
    } finally {
      await pair2.cleanup();
      await summarizer.close();
    }
  });

  it('round-trips 10 MiB', async () => {
    const payload = randomBytes(10 * MiB);
    const got = await tcpExchange(port, { send: payload, timeoutMs: 60_000 });
    assert.equal(got.length, payload.length);
    assert.equal(sha256(got), sha256(payload));
  });
});

describe('server-first protocols', { timeout: 120_000 }, () => {
  const AUTHORITY = 'smtp.weft.test:2525';
  const DETECT_TIMEOUT_MS = 200;
  let app: TestServer;
  let pair: MeshPair;
  /** An inbound proxy for the same app, with the app's port in `--opaque-ports`. */
  let opaqueInbound: ProxyProcess;
  let upstreamPort: number;
  /** Connections made through the mesh, to check the detection counts. */
  let meshConnections = 0;
  before(async () => {
    app = await startBannerServer(BANNER);
    pair = await startMeshPair({
      authority: AUTHORITY,
      appPort: app.port,
      // Marked opaque in discovery: even a CONNECT tunnel to it must not wait for detection.
      opaque: true,
      inboundArgs: ['--detect-timeout-ms', String(DETECT_TIMEOUT_MS)],
      outboundArgs: ['--upstream', `${AUTHORITY}=0`],
    });
    opaqueInbound = await startProxy({
      args: [
        '--app-port',
        String(app.port),
        '--opaque-ports',
        String(app.port),
        '--outbound-listen-addr',
        'none',
      ],
    });
    upstreamPort = portOf(pair.outbound.upstreams[AUTHORITY]);
  });
  after(async () => {
    await Promise.all([pair?.cleanup(), opaqueInbound?.stop()]);
    await app?.close();
  });

  it(`delivers the banner through both proxies in under ${BANNER_BUDGET_MS} ms, to a client that never writes`, async (t) => {
    const timings: number[] = [];
    for (let i = 0; i < 5; i++) {
      const { data, elapsedMs } = await firstBytes(upstreamPort, BANNER.length);
      meshConnections++;
      assert.equal(data.toString(), BANNER);
      timings.push(elapsedMs);
    }
    const summary = timings.map((ms) => ms.toFixed(1)).join(', ');
    t.diagnostic(`banner through both proxies after ${summary} ms`);
    for (const t of timings) assert.ok(t < BANNER_BUDGET_MS, `banner after ${summary} ms`);
  });

  it('still delivers the banner, then the FIN, when the client half-closes at once', async () => {
    const got = await tcpExchange(upstreamPort, { end: true, timeoutMs: 5000 });
    meshConnections++;
    assert.equal(got.toString(), BANNER);
  });

  it(`carries a CONNECT tunnel to a destination marked opaque without detection (banner under ${BANNER_BUDGET_MS} ms)`, async (t) => {
    const started = performance.now();
    const tunnel = await connectTunnel(pair.outbound.outbound!, AUTHORITY);
    meshConnections++;
    try {
      const banner = await byteReader(tunnel).read(BANNER.length);
      const elapsedMs = performance.now() - started;
      t.diagnostic(`banner through a CONNECT tunnel after ${elapsedMs.toFixed(1)} ms`);
      assert.equal(banner.toString(), BANNER);
      assert.ok(elapsedMs < BANNER_BUDGET_MS, `banner after ${elapsedMs.toFixed(1)} ms`);
    } finally {
      tunnel.destroy();
    }
  });

  it('gives a silent client of the inbound port the banner after the detect timeout', async (t) => {
    const { data, elapsedMs } = await firstBytes(portOf(pair.inbound.inbound), BANNER.length);
    t.diagnostic(`banner to a silent client after ${elapsedMs.toFixed(1)} ms`);
    assert.equal(data.toString(), BANNER);
    assert.ok(elapsedMs < 1000, `banner after ${elapsedMs.toFixed(1)} ms`);
    // Not via some faster path: the inbound proxy did wait for the client to speak first.
    assert.ok(elapsedMs >= DETECT_TIMEOUT_MS - 20, `banner after ${elapsedMs.toFixed(1)} ms`);
  });

  it(`skips detection on an --opaque-ports app port (banner under ${BANNER_BUDGET_MS} ms)`, async (t) => {
    const { data, elapsedMs } = await firstBytes(portOf(opaqueInbound.inbound), BANNER.length);
    t.diagnostic(`banner from an opaque port after ${elapsedMs.toFixed(1)} ms`);
    assert.equal(data.toString(), BANNER);
    assert.ok(elapsedMs < BANNER_BUDGET_MS, `banner after ${elapsedMs.toFixed(1)} ms`);
  });

  it('counts each detection outcome in protocol_detect_total', async () => {
    const inbound = await pair.inbound.metrics();
    const detect = (result: string) =>
      sampleSum(inbound, 'protocol_detect_total', { direction: 'inbound', result });
    assert.equal(detect('transport'), meshConnections, inbound);
    assert.equal(detect('timeout'), 1, inbound);
    const outbound = await pair.outbound.metrics();
    // The CONNECT request was HTTP/1; the tunnel to the opaque destination skipped detection.
    const outDetect = (result: string) =>
      sampleSum(outbound, 'protocol_detect_total', { direction: 'outbound', result });
    assert.deepEqual([outDetect('http/1'), outDetect('skipped')], [1, 1], outbound);
    const opaque = await opaqueInbound.metrics();
    assert.equal(
      sampleSum(opaque, 'protocol_detect_total', { direction: 'inbound', result: 'skipped' }),
      1,
      opaque,
    );
  });
});

/** A TCP app that says nothing until the client half-closes, then reports how much it read and closes. */
async function startSummarizer(): Promise<TestServer> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let n = 0;
    socket.on('data', (chunk: Buffer) => (n += chunk.length));
    socket.on('end', () => socket.end(`received ${n} bytes before your FIN\n`));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as net.AddressInfo).port, close: () => closeServer(server, sockets) };
}

/** A WebSocket client session: one message in flight at a time. */
interface WsSession {
  /** Sends `data` and resolves with the next message that comes back. */
  roundTrip(data: string | Buffer): Promise<{ data: Buffer; isBinary: boolean }>;
  /** Starts the close handshake; resolves with what the server's close frame said. */
  close(code: number, reason: string): Promise<{ code: number; reason: string }>;
}

/** Opens `url` with the `ws` client; rejects on an error or a refused upgrade (bounded to 10 s). */
function openWs(url: string, options: ClientOptions & http.ClientRequestArgs): Promise<WsSession> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, options);
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error('WebSocket open timed out'));
    }, 10_000);
    let waiting: ((m: { data: Buffer; isBinary: boolean }) => void) | undefined;
    ws.on('message', (data: RawData, isBinary: boolean) => {
      waiting?.({ data: Buffer.isBuffer(data) ? data : Buffer.concat(data as Buffer[]), isBinary });
      waiting = undefined;
    });
    ws.on('unexpected-response', (_req, res) => reject(new Error(`upgrade answered ${res.statusCode}`)));
    ws.on('error', reject);
    ws.on('open', () => {
      clearTimeout(timer);
      resolve({
        roundTrip: (data) =>
          withTimeout(
            new Promise((res) => {
              waiting = res;
              ws.send(data, { binary: Buffer.isBuffer(data) });
            }),
            10_000,
            'WebSocket echo',
          ),
        close: (code, reason) =>
          withTimeout(
            new Promise((res) => {
              ws.once('close', (c: number, r: Buffer) => res({ code: c, reason: r.toString() }));
              ws.close(code, reason);
            }),
            10_000,
            'WebSocket close handshake',
          ),
      });
    });
  });
}

/** Text, binary and a 1 MiB message echo with their type; then a clean close handshake. */
async function exerciseEcho(ws: WsSession): Promise<void> {
  const text = await ws.roundTrip('hello, mesh');
  assert.deepEqual([text.data.toString(), text.isBinary], ['hello, mesh', false]);
  const bytes = Buffer.from([0, 1, 2, 0xfe, 0xff]);
  const binary = await ws.roundTrip(bytes);
  assert.ok(binary.isBinary);
  assert.ok(binary.data.equals(bytes));
  const big = randomBytes(MiB);
  const echoed = await ws.roundTrip(big);
  assert.equal(echoed.data.length, MiB);
  assert.equal(sha256(echoed.data), sha256(big));
  // A close frame from the server, not a cut connection (that would be 1006).
  assert.deepEqual(await ws.close(1000, 'bye'), { code: 1000, reason: 'bye' });
}

/** A socket tunnelled through the proxy's CONNECT to `authority`. */
function connectTunnel(proxy: string, authority: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const { host, port } = splitAddr(proxy);
    const req = http.request({ host, port, method: 'CONNECT', path: authority, timeout: 10_000 });
    req.on('connect', (res, socket, head) => {
      if (res.statusCode !== 200) {
        socket.destroy();
        return reject(new Error(`CONNECT answered ${res.statusCode}`));
      }
      if (head.length > 0) socket.unshift(head);
      resolve(socket);
    });
    req.on('timeout', () => req.destroy(new Error('CONNECT timed out')));
    req.on('error', reject);
    req.end();
  });
}

/** Connects without writing; resolves with the first `n` bytes and the time from connect() to them. */
function firstBytes(port: number, n: number): Promise<{ data: Buffer; elapsedMs: number }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const socket = net.connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    let got = 0;
    const timer = setTimeout(() => done(new Error(`no ${n} bytes within 5 s (got ${got})`)), 5000);
    const done = (err: Error | null) => {
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve({ data: Buffer.concat(chunks), elapsedMs: performance.now() - started });
    };
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      got += chunk.length;
      if (got >= n) done(null);
    });
    socket.on('end', () => done(new Error(`closed after ${got} bytes`)));
    socket.on('error', done);
  });
}

function connected(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port }, () => {
      socket.off('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

/** Reads exact byte counts off a socket; each `read` rejects if the socket ends first or after 10 s. */
function byteReader(socket: net.Socket) {
  let buf = Buffer.alloc(0);
  let wake: (() => void) | undefined;
  let ended = false;
  socket.on('data', (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    wake?.();
  });
  socket.on('close', () => {
    ended = true;
    wake?.();
  });
  return {
    async read(n: number): Promise<Buffer> {
      const deadline = Date.now() + 10_000;
      while (buf.length < n) {
        if (ended) throw new Error(`socket closed with ${buf.length} of ${n} bytes`);
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`only ${buf.length} of ${n} bytes within 10 s`);
        await new Promise<void>((r) => {
          const t = setTimeout(r, left);
          wake = () => {
            clearTimeout(t);
            r();
          };
        });
        wake = undefined;
      }
      const out = buf.subarray(0, n);
      buf = buf.subarray(n);
      return out;
    },
  };
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, expired]).finally(() => clearTimeout(timer));
}

function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

function splitAddr(addr: string): { host: string; port: number } {
  const i = addr.lastIndexOf(':');
  return { host: addr.slice(0, i), port: Number(addr.slice(i + 1)) };
}

function portOf(addr: string | undefined): number {
  assert.ok(addr, 'the listener is enabled');
  return splitAddr(addr).port;
}
