/**
 * Upstream bindings (`--upstream NAME=PORT`) are protocol-aware (docs/proxy-contract.md): an app
 * that ignores proxy settings and calls the binding directly, with whatever Host it likes, has
 * its HTTP/1 and h2c requests routed to service NAME and balanced per request over its
 * endpoints, labelled with NAME; anything else stays opaque TCP, and a server-first service
 * marked opaque still gets its banner at once (detection skipped).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import http2 from 'node:http2';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  type HttpApp,
  startBannerServer,
  startHttpApp,
  startTcpEcho,
  type TestServer,
  tcpExchange,
} from './support/apps.js';
import { sampleSum } from './support/prom-text.js';
import { type ProxyProcess, startProxy, writeDestinationsFile } from './support/proxy-process.js';

const SERVICE = 'books.weft.test:7002';
/** The same two replicas under a second name, so the h2c test starts with a fresh balancer. */
const SERVICE_H2 = 'books-h2.weft.test:7004';
const ECHO = 'echo.weft.test:7003';
const SMTP = 'smtp.weft.test:2525';
const BANNER = '220 weft.test ESMTP ready\r\n';
const REQUESTS = 40;

describe('HTTP through an upstream binding', { timeout: 120_000 }, () => {
  const replicas: HttpApp[] = [];
  const inbound: ProxyProcess[] = [];
  let echoApp: TestServer;
  let bannerApp: TestServer;
  let outbound: ProxyProcess;
  let dir: string;
  const port = (name: string) => Number(outbound.upstreams[name]!.split(':').pop());

  before(async () => {
    for (const name of ['r0', 'r1']) {
      replicas.push(
        await startHttpApp((req, res) => {
          res.setHeader('x-replica', name);
          res.end(JSON.stringify({ replica: name, host: req.headers.host ?? req.headers[':authority'] }));
        }),
      );
    }
    echoApp = await startTcpEcho();
    bannerApp = await startBannerServer(BANNER);
    for (const app of [...replicas, echoApp, bannerApp])
      inbound.push(
        await startProxy({ args: ['--app-port', String(app.port), '--outbound-listen-addr', 'none'] }),
      );
    dir = await mkdtemp(join(tmpdir(), 'weft-binding-'));
    const destinations = join(dir, 'destinations.yaml');
    const ep = (p: ProxyProcess) => ({ address: p.inbound!, meshed: true });
    await writeDestinationsFile(destinations, [
      { authority: SERVICE, endpoints: [ep(inbound[0]), ep(inbound[1])] },
      { authority: SERVICE_H2, endpoints: [ep(inbound[0]), ep(inbound[1])] },
      { authority: ECHO, endpoints: [ep(inbound[2])] },
      { authority: SMTP, opaque: true, endpoints: [ep(inbound[3])] },
    ]);
    outbound = await startProxy({
      args: [
        '--destinations',
        destinations,
        '--inbound-listen-addr',
        'none',
        ...[SERVICE, SERVICE_H2, ECHO, SMTP].flatMap((a) => ['--upstream', `${a}=0`]),
      ],
    });
  });
  after(async () => {
    await Promise.all([outbound?.stop(), ...inbound.map((p) => p.stop())]);
    await Promise.all([...replicas, echoApp, bannerApp].map((a) => a?.close()));
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('balances HTTP/1 requests per request over both replicas, keeping the Host the app sent', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const seen = new Map<string, number>();
    try {
      for (let i = 0; i < REQUESTS; i++) {
        const body = await h1Get(port(SERVICE), agent);
        const { replica, host } = JSON.parse(body) as { replica: string; host: string };
        assert.equal(host, `127.0.0.1:${port(SERVICE)}`);
        seen.set(replica, (seen.get(replica) ?? 0) + 1);
      }
    } finally {
      agent.destroy();
    }
    // One keep-alive connection: both replicas answering means the balancing is per request.
    assert.deepEqual([...seen.keys()].sort(), ['r0', 'r1'], JSON.stringify([...seen]));
  });

  it('balances h2c requests per request over both replicas on one connection', async () => {
    const session = http2.connect(`http://127.0.0.1:${port(SERVICE_H2)}`);
    const seen = new Set<string>();
    try {
      for (let i = 0; i < REQUESTS; i++) {
        const { replica, host } = JSON.parse(await h2Get(session)) as { replica: string; host: string };
        assert.equal(host, `127.0.0.1:${port(SERVICE_H2)}`);
        seen.add(replica);
      }
    } finally {
      session.close();
    }
    assert.deepEqual([...seen].sort(), ['r0', 'r1']);
  });

  it("labels the requests with the binding's service authority, not the Host", async () => {
    const text = await outbound.metrics();
    for (const service of [SERVICE, SERVICE_H2]) {
      assert.equal(
        sampleSum(text, 'request_total', { direction: 'outbound', authority: service }),
        REQUESTS,
        text,
      );
      const host = `127.0.0.1:${port(service)}`;
      assert.equal(sampleSum(text, 'request_total', { direction: 'outbound', authority: host }), 0, text);
    }
    assert.ok(
      sampleSum(text, 'protocol_detect_total', { direction: 'outbound', result: 'http/1' }) >= 1,
      text,
    );
    assert.ok(
      sampleSum(text, 'protocol_detect_total', { direction: 'outbound', result: 'http/2' }) >= 1,
      text,
    );
  });

  it('still carries bytes that are not HTTP as opaque TCP (echo, in turns and half-closed)', async () => {
    const socket = net.connect({ host: '127.0.0.1', port: port(ECHO) });
    try {
      for (const word of ['one', 'two', 'three']) {
        socket.write(word);
        assert.equal((await readBytes(socket, word.length)).toString(), word);
      }
    } finally {
      socket.destroy();
    }
    const payload = Buffer.alloc(256 * 1024, 7);
    const got = await tcpExchange(port(ECHO), { send: payload, timeoutMs: 10_000 });
    assert.ok(got.equals(payload));
  });

  it('gives a server-first service marked opaque its banner at once (no detection wait)', async () => {
    const started = performance.now();
    const got = await tcpExchange(port(SMTP), { expectBytes: BANNER.length, timeoutMs: 5000 });
    const elapsedMs = performance.now() - started;
    assert.equal(got.toString(), BANNER);
    // The detect timeout is 500 ms: a banner well before it was not held up by detection.
    assert.ok(elapsedMs < 300, `banner after ${elapsedMs.toFixed(1)} ms`);
  });
});

function h1Get(port: number, agent: http.Agent): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/books', agent, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () =>
        res.statusCode === 200 ? resolve(body) : reject(new Error(`${res.statusCode} ${body}`)),
      );
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
  });
}

function h2Get(session: http2.ClientHttp2Session): Promise<string> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':path': '/books' });
    let status = 0;
    let body = '';
    stream.setEncoding('utf8');
    stream.setTimeout(10_000, () => stream.close(http2.constants.NGHTTP2_CANCEL));
    stream.on('response', (h) => (status = Number(h[':status'])));
    stream.on('data', (c: string) => (body += c));
    stream.on('end', () => (status === 200 ? resolve(body) : reject(new Error(`${status} ${body}`))));
    stream.on('error', reject);
  });
}

function readBytes(socket: net.Socket, n: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => done(new Error(`read timed out with ${buf.length} bytes`)), 5000);
    const onData = (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      if (buf.length >= n) done(null);
    };
    const done = (err: Error | null) => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('error', done);
      if (err) reject(err);
      else resolve(buf);
    };
    socket.on('data', onData);
    socket.on('error', done);
  });
}
