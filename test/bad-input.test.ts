/**
 * Bad input on the outbound and the inbound listener, sent as exact bytes on raw sockets: each
 * gets its precise status with `weft-proxy-error`, is counted, and never disturbs the good
 * clients that keep calling through the same proxies during the whole file.
 *
 * Two identical Content-Length fields: RFC 9110 §8.6 lets a recipient either reject the message
 * or collapse the fields into one; RFC 9112 §6.3 makes any Content-Length it cannot trust an
 * unrecoverable framing error. Weft rejects them with 400 and closes: a proxy that collapses
 * while another hop rejects (or the reverse) is how request smuggling starts, and Node's parser
 * (llhttp) rejects any repeated Content-Length anyway.
 *
 * On the inbound listener, bytes that cannot be HTTP at all are not a bad request: detection
 * hands them to the app as opaque TCP (DESIGN.md §3), so the cases here are what an HTTP client
 * might send. docs/proxy-contract.md lists what the proxy refuses.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { type HttpApp, startHttpApp } from './support/apps.js';
import { eventually } from './support/eventually.js';
import { type MeshPair, type ProxyProcess, startMeshPair } from './support/proxy-process.js';

const AUTHORITY = 'books:7002';
const MAX_HEADER_BYTES = 4096;

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
  /** Resolves once the proxy has closed (or half-closed) the connection. */
  closed: Promise<void>;
  socket: net.Socket;
}

/** Connects to `addr`, writes `bytes`, and reads one HTTP/1 response (Content-Length framed). */
function rawRequest(addr: string, bytes: string | Buffer, timeoutMs = 10_000): Promise<RawResponse> {
  const [host, port] = splitAddr(addr);
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port, allowHalfOpen: true });
    sockets.add(socket);
    let buf = Buffer.alloc(0);
    let done = false;
    const closed = new Promise<void>((r) => {
      socket.once('end', r);
      socket.once('close', r);
    });
    const fail = (err: Error) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    };
    const timer = setTimeout(
      () =>
        fail(
          new Error(
            `no complete response within ${timeoutMs} ms; got ${JSON.stringify(buf.toString('latin1'))}`,
          ),
        ),
      timeoutMs,
    );
    socket.on('error', fail);
    socket.on('connect', () => socket.write(bytes));
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      const parsed = parseResponse(buf);
      if (!parsed || done) return;
      done = true;
      clearTimeout(timer);
      resolve({ ...parsed, closed, socket });
    });
    socket.once('end', () =>
      fail(new Error(`closed before a response: ${JSON.stringify(buf.toString('latin1'))}`)),
    );
  });
}

function parseResponse(buf: Buffer): Omit<RawResponse, 'closed' | 'socket'> | undefined {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return undefined;
  const [statusLine, ...lines] = buf.toString('latin1', 0, end).split('\r\n');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1]);
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const i = line.indexOf(':');
    headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  const length = Number(headers['content-length'] ?? 0);
  if (buf.length < end + 4 + length) return undefined;
  return { status, headers, body: buf.toString('utf8', end + 4, end + 4 + length) };
}

function splitAddr(addr: string): [string, number] {
  const i = addr.lastIndexOf(':');
  return [addr.slice(0, i), Number(addr.slice(i + 1))];
}

const sockets = new Set<net.Socket>();

/**
 * A client sending keep-alive GETs one after another (paced, at most `maxRequests`) until
 * stopped, counting successes and keeping every failure.
 */
class GoodClient {
  ok = 0;
  readonly failures: string[] = [];
  #stopped = false;
  readonly #agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  readonly #done: Promise<void>;

  constructor(
    readonly name: string,
    addr: string,
    maxRequests: number,
  ) {
    const [host, port] = splitAddr(addr);
    this.#done = (async () => {
      for (let i = 0; i < maxRequests && !this.#stopped; i++) {
        try {
          const { status, body } = await get(this.#agent, host, port, `/good/${this.name}/${i}`);
          const echo = JSON.parse(body) as { url: string };
          if (status !== 200 || echo.url !== `/good/${this.name}/${i}`) {
            this.failures.push(`request ${i}: ${status} ${body.slice(0, 200)}`);
          } else this.ok++;
        } catch (err) {
          this.failures.push(`request ${i}: ${(err as Error).message}`);
        }
        await new Promise((r) => setTimeout(r, 5)); // pacing: other suites share this machine
      }
    })();
  }

  /** Resolves once `n` more requests than now have succeeded. */
  async progress(n = 3): Promise<void> {
    const target = this.ok + n;
    await eventually(
      () => {
        assert.deepEqual(this.failures, [], `${this.name} failed`);
        assert.ok(this.ok >= target, `${this.name}: ${this.ok} of ${target} requests`);
      },
      { timeoutMs: 20_000 },
    );
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#done;
    this.#agent.destroy();
  }
}

function get(agent: http.Agent, host: string, port: number, path: string) {
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = http.request(
      { host, port, path, agent, headers: { host: AUTHORITY }, timeout: 10_000 },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

/** Asserts a proxy-made error response: status, reason header, Proxy-Status, and a closed connection. */
async function assertRejected(res: RawResponse, status: number, reason: string, closes = true) {
  assert.equal(res.status, status, `status; body: ${res.body}`);
  assert.equal(res.headers['weft-proxy-error'], reason);
  assert.match(res.headers['proxy-status'] ?? '', /^weft; error=http_request_error; details="/);
  if (closes) {
    assert.equal(res.headers.connection, 'close');
    await res.closed;
  }
}

/** Sum of `response_total` samples matching every `label="value"` pair given. */
function responses(metrics: string, labels: Record<string, string>): number {
  let sum = 0;
  for (const line of metrics.split('\n')) {
    if (!line.startsWith('response_total{')) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) {
      sum += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
  }
  return sum;
}

describe('bad input while good clients keep calling', () => {
  let app: HttpApp;
  let mesh: MeshPair;
  let outbound: ProxyProcess;
  let inbound: ProxyProcess;
  let goodOutbound: GoodClient;
  let goodInbound: GoodClient;
  let patientLorises: Promise<string>[] = [];
  /** Proxy-made statuses we received, per listener, to compare with the metrics at the end. */
  const sent = { outbound: new Map<number, number>(), inbound: new Map<number, number>() };

  before(async () => {
    app = await startHttpApp();
    const limit = ['--max-header-bytes', String(MAX_HEADER_BYTES)];
    mesh = await startMeshPair({
      authority: AUTHORITY,
      appPort: app.port,
      inboundArgs: limit,
      outboundArgs: limit,
    });
    outbound = mesh.outbound;
    inbound = mesh.inbound;
    goodOutbound = new GoodClient('outbound', outbound.outbound!, 20_000);
    goodInbound = new GoodClient('inbound', inbound.inbound!, 20_000);
    // Started first: the proxies give a request head 30 s, checked every 30 s.
    patientLorises = [outbound.outbound!, inbound.inbound!].map((addr) => slowLoris(addr, 90_000));
    await Promise.all([goodOutbound.progress(), goodInbound.progress()]);
  });

  after(async () => {
    await goodOutbound?.stop();
    await goodInbound?.stop();
    for (const s of sockets) s.destroy();
    await mesh?.cleanup();
    await app?.close();
  });

  const listeners = [
    { side: 'outbound', addr: () => outbound.outbound! },
    { side: 'inbound', addr: () => inbound.inbound! },
  ] as const;

  /** Sends `bytes` to a listener, checks the rejection, records it, and waits for the good clients. */
  async function expectRejected(
    side: 'outbound' | 'inbound',
    addr: string,
    bytes: string,
    status: number,
    reason: string,
    closes = true,
  ): Promise<RawResponse> {
    const res = await rawRequest(addr, bytes);
    await assertRejected(res, status, reason, closes);
    sent[side].set(status, (sent[side].get(status) ?? 0) + 1);
    await Promise.all([goodOutbound.progress(), goodInbound.progress()]);
    return res;
  }

  for (const { side, addr } of listeners) {
    describe(`${side} listener`, () => {
      it('rejects Content-Length together with Transfer-Encoding (400)', async () => {
        await expectRejected(
          side,
          addr(),
          `POST /smuggle HTTP/1.1\r\nHost: ${AUTHORITY}\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /x HTTP/1.1\r\nHost: ${AUTHORITY}\r\n\r\n`,
          400,
          'bad request',
        );
      });

      it('rejects two different Content-Length values (400)', async () => {
        await expectRejected(
          side,
          addr(),
          `POST / HTTP/1.1\r\nHost: ${AUTHORITY}\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!`,
          400,
          'bad request',
        );
      });

      it('rejects two identical Content-Length fields, or a list of them, too (400)', async () => {
        await expectRejected(
          side,
          addr(),
          `POST / HTTP/1.1\r\nHost: ${AUTHORITY}\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello`,
          400,
          'bad request',
        );
        await expectRejected(
          side,
          addr(),
          `POST / HTTP/1.1\r\nHost: ${AUTHORITY}\r\nContent-Length: 5, 5\r\n\r\nhello`,
          400,
          'bad request',
        );
      });

      it(`answers a header block over --max-header-bytes with 431, and takes one under it`, async () => {
        const padding = (n: number) => `X-Pad: ${'p'.repeat(n)}\r\n`;
        await expectRejected(
          side,
          addr(),
          `GET / HTTP/1.1\r\nHost: ${AUTHORITY}\r\n${padding(2 * MAX_HEADER_BYTES)}\r\n`,
          431,
          'headers too large',
        );
        // Many small fields count as much as one big one.
        await expectRejected(
          side,
          addr(),
          `GET / HTTP/1.1\r\nHost: ${AUTHORITY}\r\n${padding(100).repeat(60)}\r\n`,
          431,
          'headers too large',
        );
        const ok = await rawRequest(
          addr(),
          `GET /under-limit HTTP/1.1\r\nHost: ${AUTHORITY}\r\n${padding(MAX_HEADER_BYTES / 2)}\r\n`,
        );
        assert.equal(ok.status, 200, ok.body);
        assert.equal(ok.headers['weft-proxy-error'], undefined);
        ok.socket.destroy();
      });

      it('rejects malformed request lines (400)', async () => {
        for (const line of ['GET / HTTP/1.1 extra', 'GET /a b HTTP/1.1', 'GET / HTTP/1.x', 'GET  HTTP/1.1']) {
          await expectRejected(side, addr(), `${line}\r\nHost: ${AUTHORITY}\r\n\r\n`, 400, 'bad request');
        }
      });

      it('rejects header names with invalid characters (400)', async () => {
        for (const field of ['Ho st: a', 'X(y): 1', 'X-\x01: 1', ': empty', 'X-Tab\t: 1']) {
          await expectRejected(
            side,
            addr(),
            `GET / HTTP/1.1\r\nHost: ${AUTHORITY}\r\n${field}\r\n\r\n`,
            400,
            'bad request',
          );
        }
      });

      it('rejects an absolute-form target with a scheme other than http (400)', async () => {
        for (const target of [`ftp://${AUTHORITY}/file`, `gopher://${AUTHORITY}/`, 'mailto:x@books']) {
          // A request-level rejection: the connection may stay open, the message was well framed.
          await expectRejected(
            side,
            addr(),
            `GET ${target} HTTP/1.1\r\nHost: ${AUTHORITY}\r\n\r\n`,
            400,
            'bad request',
            false,
          );
        }
      });

      it('rejects CONNECT with a bad target (400)', async () => {
        for (const target of ['nonsense', 'books:0', 'books:99999', '/path', ':7002']) {
          await expectRejected(
            side,
            addr(),
            `CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`,
            400,
            'bad request',
          );
        }
      });

      it('does not let slow-loris clients that never finish their headers block anyone', async () => {
        const lorises: net.Socket[] = [];
        const [host, port] = splitAddr(addr());
        for (let i = 0; i < 20; i++) {
          const s = net.connect({ host, port });
          s.on('error', () => {});
          sockets.add(s);
          lorises.push(s);
          // Half of them say nothing at all; the others start a request and trickle.
          if (i % 2 === 1) s.write(`GET /slow/${i} HTTP/1.1\r\nHost: ${AUTHORITY}\r\nX-Slow: `);
        }
        const trickle = setInterval(() => {
          for (const [i, s] of lorises.entries()) if (i % 2 === 1 && !s.destroyed) s.write('a');
        }, 100);
        try {
          await Promise.all([goodOutbound.progress(20), goodInbound.progress(20)]);
          // And a fresh client is served at once, while the lorises still hold their connections.
          const fresh = await rawRequest(addr(), `GET /fresh HTTP/1.1\r\nHost: ${AUTHORITY}\r\n\r\n`, 5000);
          assert.equal(fresh.status, 200);
          fresh.socket.destroy();
          assert.ok(
            lorises.filter((s) => !s.destroyed && s.readyState === 'open').length >= 10,
            'the slow clients were still connected',
          );
        } finally {
          clearInterval(trickle);
          for (const s of lorises) s.destroy();
        }
      });
    });
  }

  it('counts every proxy-made rejection in response_total', async () => {
    for (const [proxy, side] of [
      [outbound, 'outbound'],
      [inbound, 'inbound'],
    ] as const) {
      const metrics = await proxy.metrics();
      for (const [status, count] of sent[side]) {
        const labels = { direction: side, status_code: String(status), classification: 'failure' };
        assert.equal(responses(metrics, labels), count, `${side} ${status}:\n${metrics}`);
      }
    }
  });

  it('served the good clients without a single failure', async () => {
    await goodOutbound.stop();
    await goodInbound.stop();
    assert.deepEqual(goodOutbound.failures, []);
    assert.deepEqual(goodInbound.failures, []);
    assert.ok(goodOutbound.ok > 50 && goodInbound.ok > 50, `${goodOutbound.ok} / ${goodInbound.ok}`);
  });

  // Regression: the headers deadline was reported as "400 bad request".
  it('cuts a client that trickles its head forever with 408 after the headers deadline', async () => {
    for (const response of await Promise.all(patientLorises)) {
      assert.match(response, /^HTTP\/1\.1 408 Request Timeout\r\n/);
      assert.match(response, /\r\nweft-proxy-error: request timeout\r\n/);
    }
  });
});

/**
 * A client that sends a request head one byte a second and never finishes it. Resolves with
 * what the proxy answered once it closed the connection; rejects after `timeoutMs`.
 */
function slowLoris(addr: string, timeoutMs: number): Promise<string> {
  const [host, port] = splitAddr(addr);
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    sockets.add(socket);
    let answer = '';
    const trickle = setInterval(() => socket.writable && socket.write('a'), 1000);
    const timer = setTimeout(() => {
      clearInterval(trickle);
      socket.destroy();
      reject(new Error(`still connected after ${timeoutMs} ms; got ${JSON.stringify(answer)}`));
    }, timeoutMs);
    socket.on('connect', () => socket.write(`GET /patient HTTP/1.1\r\nHost: ${AUTHORITY}\r\nX-Slow: `));
    socket.on('data', (c) => (answer += c));
    socket.on('error', () => {});
    socket.on('close', () => {
      clearInterval(trickle);
      clearTimeout(timer);
      resolve(answer);
    });
  });
}
