/**
 * Errors through two proxies, seen by the real curl: every response a proxy makes is labelled
 * (`weft-proxy-error` and an RFC 9209 `Proxy-Status` naming weft) with 502 (the app or the peer
 * proxy is down), 503 (no endpoints), 504 (response timeout, by flag or `weft-timeout`), while
 * the app's own errors pass untouched. An authority the mesh does not know is forwarded to its
 * own host:port, unless it is the outbound proxy itself: then the loop guard answers, in
 * whatever spelling the client used for that address.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type EchoBody, type HttpApp, startHttpApp } from './support/apps.js';
import { closedPort } from './support/closed-port.js';
import { curl, curlWriteOut, parseCurlWrite } from './support/curl.js';
import { eventually } from './support/eventually.js';
import {
  type MeshPair,
  type ProxyProcess,
  startMeshPair,
  startProxy,
  writeDestinationsFile,
} from './support/proxy-process.js';

const AUTHORITY = 'books:7002';
/** Meshed, but the app behind its inbound proxy is not listening. */
const APP_DOWN = 'appdown:7002';
/** Meshed, but nothing listens at the endpoint (the peer proxy is gone). */
const PEER_DOWN = 'peerdown:7002';
/** Known to discovery, with no endpoints. */
const EMPTY = 'empty:7002';
const RESPONSE_TIMEOUT_MS = 300;
/** curl's own bound on every transfer (below the helper's 15 s kill). */
const MAX_TIME = ['--max-time', '12'];
const W = ['http_code', 'http_version', 'time_total'] as const;
const PROTOS: Record<string, string[]> = { 'HTTP/1.1': [], h2c: ['--http2-prior-knowledge'] };

let app: HttpApp;
let pair: MeshPair;
let outbound: string;
/** An inbound proxy whose app port nothing listens on. */
let appDownInbound: ProxyProcess;
/** A second outbound proxy on the same destinations, with `--response-timeout-ms`. */
let timeoutOutbound: ProxyProcess;

interface Reply {
  status: number;
  version: string;
  timeMs: number;
  /** Response header fields (names lower case; repeated fields joined with ", "). */
  headers: Record<string, string>;
  body: string;
}

before(async () => {
  app = await startHttpApp();
  pair = await startMeshPair({ authority: AUTHORITY, appPort: app.port });
  outbound = pair.outbound.outbound!;
  const deadPort = await closedPort();
  appDownInbound = await startProxy({ args: ['--app-port', String(deadPort)] });
  await writeDestinationsFile(pair.destinationsPath, [
    pair.destination,
    { authority: APP_DOWN, endpoints: [{ address: appDownInbound.inbound!, meshed: true }] },
    { authority: PEER_DOWN, endpoints: [{ address: `127.0.0.1:${deadPort}`, meshed: true }] },
    { authority: EMPTY, endpoints: [] },
  ]);
  // Until the reload, EMPTY is unknown and forwarded as it is (and fails to resolve).
  await eventually(async () => assert.equal((await request(outbound, EMPTY, '/')).status, 503), {
    timeoutMs: 20_000,
  });
  timeoutOutbound = await startProxy({
    args: [
      ...['--destinations', pair.destinationsPath, '--inbound-listen-addr', 'none'],
      ...['--response-timeout-ms', String(RESPONSE_TIMEOUT_MS)],
    ],
  });
});

after(async () => {
  await Promise.all([pair?.cleanup(), appDownInbound?.stop(), timeoutOutbound?.stop()]);
  await app?.close();
});

/** curl (`-i`) to `proxy` with `Host: authority` (origin-form) unless `args` route otherwise. */
async function request(proxy: string, authority: string, path: string, args: string[] = []): Promise<Reply> {
  const url = `http://${proxy}${path}`;
  return run([...args, '-H', `Host: ${authority}`, url]);
}

async function run(args: string[]): Promise<Reply> {
  const res = await curl([...MAX_TIME, '-i', ...curlWriteOut(W), ...args]);
  assert.equal(res.code, 0, res.stderr);
  let { body: raw, values } = parseCurlWrite(res.stdout, W);
  // Skip heads that precede the final response: a CONNECT's "200 Connection Established".
  while (/^HTTP\/[\d.]+ \d{3}[^\r]*\r\n(?:[^\r]+\r\n)*\r\nHTTP\//.test(raw)) {
    raw = raw.slice(raw.indexOf('\r\n\r\n') + 4);
  }
  const end = raw.indexOf('\r\n\r\n');
  const headers: Record<string, string> = {};
  for (const line of raw.slice(0, end).split('\r\n').slice(1)) {
    const colon = line.indexOf(':');
    const name = line.slice(0, colon).toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  return {
    status: Number(values.http_code),
    version: values.http_version,
    timeMs: Number(values.time_total) * 1000,
    headers,
    body: raw.slice(end + 4),
  };
}

/** Asserts a proxy-made error: the status, `weft-proxy-error: reason`, and a weft Proxy-Status entry. */
function assertProxyError(r: Reply, status: number, reason: string, proxyStatus: string): void {
  const detail = JSON.stringify(r);
  assert.equal(r.status, status, detail);
  assert.equal(r.headers['weft-proxy-error'], reason, detail);
  assert.match(r.headers['proxy-status'] ?? '', new RegExp(`^weft; error=${proxyStatus}(;|$)`), detail);
}

describe('proxy-made errors are labelled', () => {
  for (const [proto, args] of Object.entries(PROTOS)) {
    it(`502 when the app behind the inbound proxy is down (${proto})`, async () => {
      const r = await request(outbound, APP_DOWN, '/echo', args);
      assertProxyError(r, 502, 'connect failed', 'connection_refused');
    });

    it(`502 when the peer proxy is down (${proto})`, async () => {
      const r = await request(outbound, PEER_DOWN, '/echo', args);
      assertProxyError(r, 502, 'connect failed', 'connection_refused');
    });

    it(`503 no endpoints for a known authority without endpoints (${proto})`, async () => {
      const r = await request(outbound, EMPTY, '/echo', args);
      assertProxyError(r, 503, 'no endpoints', 'destination_unavailable');
    });

    it(`504 after --response-timeout-ms, while fast requests pass (${proto})`, async () => {
      const r = await request(timeoutOutbound.outbound!, AUTHORITY, '/slow/30000', args);
      assertProxyError(r, 504, 'response timeout', 'http_response_timeout');
      assert.ok(r.timeMs < 10_000, `answered after ${r.timeMs} ms`);
      assert.equal((await request(timeoutOutbound.outbound!, AUTHORITY, '/slow/10', args)).status, 200);
    });

    it(`504 after a per-request weft-timeout, which the app never sees (${proto})`, async () => {
      const r = await request(outbound, AUTHORITY, '/slow/30000', [...args, '-H', 'weft-timeout: 200ms']);
      assertProxyError(r, 504, 'response timeout', 'http_response_timeout');
      assert.match(r.body, /200 ms/);
      assert.ok(r.timeMs < 10_000, `answered after ${r.timeMs} ms`);
      const ok = await request(outbound, AUTHORITY, '/echo', [...args, '-H', 'weft-timeout: 5s']);
      assert.equal(ok.status, 200);
      assert.equal((JSON.parse(ok.body) as EchoBody).headers['weft-timeout'], undefined);
    });

    it(`passes the app's own 500 and 503 untouched (${proto})`, async () => {
      for (const status of [500, 503]) {
        const r = await request(outbound, AUTHORITY, `/status/${status}`, args);
        assert.equal(r.status, status);
        assert.equal(r.headers['weft-proxy-error'], undefined);
        assert.equal(r.headers['proxy-status'], undefined);
        assert.equal((JSON.parse(r.body) as EchoBody).url, `/status/${status}`);
      }
    });
  }

  it('labels errors for HTTP_PROXY (absolute-form) clients too', async () => {
    const r = await run(['-x', `http://${outbound}`, `http://${EMPTY}/echo`]);
    assertProxyError(r, 503, 'no endpoints', 'destination_unavailable');
  });
});

describe('authorities the mesh does not know', () => {
  it('forwards them unmeshed to their own host:port', async () => {
    const target = `127.0.0.1:${app.port}`;
    for (const r of [
      await request(outbound, target, '/unmeshed?by=host'),
      await run(['-x', `http://${outbound}`, `http://${target}/unmeshed?by=proxy`]),
      await request(outbound, target, '/unmeshed?by=h2c', ['--http2-prior-knowledge']),
    ]) {
      assert.equal(r.status, 200, JSON.stringify(r));
      const echo = JSON.parse(r.body) as EchoBody;
      assert.match(echo.url, /^\/unmeshed\?by=/);
      assert.equal(echo.headers.host ?? echo.headers[':authority'], target);
    }
    // Straight to the app: the inbound proxy saw none of them.
    assert.doesNotMatch(await pair.inbound.metrics(), new RegExp(`authority="${target}"`));
  });

  it('answers a request for the outbound proxy itself with a loop error, in any spelling', async () => {
    const port = Number(outbound.split(':').pop());
    const spellings = [
      outbound,
      `localhost:${port}`,
      `LocalHost:${port}`,
      `127.1:${port}`,
      `0.0.0.0:${port}`,
      `[::ffff:127.0.0.1]:${port}`,
      `2130706433:${port}`,
    ];
    const before = await outboundRequests();
    for (const authority of spellings) {
      const r = await request(outbound, authority, '/loop');
      assertProxyError(r, 502, 'loop detected', 'proxy_loop_detected');
    }
    const viaProxy = await run(['-x', `http://${outbound}`, `http://127.1:${port}/loop`]);
    assertProxyError(viaProxy, 502, 'loop detected', 'proxy_loop_detected');
    const viaTunnel = await run(['-p', '-x', `http://${outbound}`, `http://${outbound}/loop`]);
    assertProxyError(viaTunnel, 502, 'loop detected', 'proxy_loop_detected');
    const viaH2c = await request(outbound, `127.1:${port}`, '/loop', ['--http2-prior-knowledge']);
    assertProxyError(viaH2c, 502, 'loop detected', 'proxy_loop_detected');
    // Each client request was handled once: none came back around as another request.
    assert.equal((await outboundRequests()) - before, spellings.length + 3);
    // And the proxy still serves everyone else.
    assert.equal((await request(outbound, AUTHORITY, '/after-loops')).status, 200);
  });
});

/** The sum of the outbound proxy's `request_total` over every outbound series. */
async function outboundRequests(): Promise<number> {
  let sum = 0;
  for (const line of (await pair.outbound.metrics()).split('\n')) {
    if (line.startsWith('request_total{') && line.includes('direction="outbound"'))
      sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}
