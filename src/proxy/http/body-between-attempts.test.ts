/**
 * A request body between attempts: the HTTP/1.1 client (h1-client.ts) pauses a body whose
 * attempt failed before any response, so that a retry (connect-retry.ts) finds all of it. Then
 * the next reader must resume it (an HTTP/2 pump), and when no attempt follows, the failing
 * exchange (runExchange) must drain it, or the client's connection is never read again. Real sockets.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { closedPort } from '../../../test/support/closed-port.js';
import { ConnectError } from '../../lib/errors.js';
import { ProxyMetrics } from '../metrics/proxy-metrics.js';
import { newTcpConnector } from '../tcp/connect.js';
import { h1Downstream, h1RequestHead } from './downstream-h1.js';
import { runExchange, type SendHooks } from './exchange.js';
import { pump } from './h2-pump.js';
import { h1Send, newH1Client } from './upstream-h1.js';

const HOOKS: SendHooks = { onInformational() {}, requestTrailers: () => undefined, onCancel() {} };

test('a body paused by a failed attempt flows into the HTTP/2 pump of the next', async () => {
  const port = await closedPort();
  const client = newH1Client(newTcpConnector(1000), 8);
  const body = new PassThrough();
  const head = {
    method: 'POST',
    scheme: 'http',
    authority: `127.0.0.1:${port}`,
    path: '/',
    headers: {},
    origProto: 'HTTP/1.1' as const,
    hasBody: true,
    grpc: false,
    timeoutMs: 0,
  };
  try {
    const target = { host: '127.0.0.1', port, addr: `127.0.0.1:${port}` };
    await assert.rejects(h1Send(client, target)(head, body, HOOKS), ConnectError);
    assert.equal(body.isPaused(), true, 'the failed attempt left the body paused for the next');
    const dst = new PassThrough();
    const got: Buffer[] = [];
    dst.on('data', (c: Buffer) => got.push(c));
    pump(body, dst, false);
    body.end('hello');
    await new Promise((r) => dst.once('end', r));
    assert.equal(Buffer.concat(got).toString(), 'hello');
  } finally {
    client.destroy();
  }
});

test('an exchange that fails after its attempt paused the body drains it: the connection serves its next request', async () => {
  const port = await closedPort();
  const client = newH1Client(newTcpConnector(1000), 8);
  const target = { host: '127.0.0.1', port, addr: `127.0.0.1:${port}` };
  // A proxy-like server: every exchange is sent on to a refused port, and fails with a 502.
  const metrics = new ProxyMetrics();
  const series = () => metrics.http('inbound', 'refused', target.addr, 'false');
  const routed = { series: series(), send: h1Send(client, target) };
  const server = http.createServer((req, res) => {
    const head = h1RequestHead(req, undefined, 0);
    void runExchange(
      h1Downstream(req, res, head, () => false),
      () => routed,
      series,
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port: proxyPort } = server.address() as AddressInfo;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const post = (size: number) =>
    new Promise<{ status: number; socket: unknown }>((resolve, reject) => {
      const req = http.request(
        { port: proxyPort, host: '127.0.0.1', method: 'POST', path: '/', agent },
        (res) => {
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode ?? 0, socket: req.socket }));
        },
      );
      req.on('error', reject);
      req.end(Buffer.alloc(size, 'x'));
    });
  try {
    // Large enough that most of it arrives after the attempt failed.
    const first = await post(4 * 1024 * 1024);
    assert.equal(first.status, 502);
    const second = await Promise.race([
      post(10),
      new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error('the next request was never read')), 5000),
      ),
    ]);
    assert.equal(second.status, 502);
    assert.equal(second.socket, first.socket, 'the same keep-alive connection');
  } finally {
    agent.destroy();
    client.destroy();
    server.closeAllConnections();
    server.close();
  }
});
