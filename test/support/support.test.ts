/** The test support itself: each app answers real clients directly (no proxy), quickly. */

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import * as http from 'node:http';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import {
  bytesPatternSha256,
  closeServer,
  type EchoBody,
  grpcClient,
  serverStreamCall,
  startBannerServer,
  startGrpcApp,
  startHttpApp,
  startTcpEcho,
  startWsEchoApp,
  type TestServer,
  tcpExchange,
  unaryCall,
  wsRoundTrip,
} from './apps.js';
import { closedPort } from './closed-port.js';
import { curl, curlWriteOut, parseCurlWrite } from './curl.js';
import { eventually, onceLine } from './eventually.js';
import { REPO_ROOT } from './paths.js';
import { ProxyStartError, startMeshPair, startProxy } from './proxy-process.js';

const W = ['http_code', 'http_version', 'size_download'] as const;

describe('closedPort', () => {
  it('gives a free loopback port below the ephemeral range, where a connection is refused', async () => {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    const port = await closedPort();
    assert.ok(port >= 1024 && port < low, `${port} is not below the ephemeral range (from ${low})`);
    const err = await new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(undefined);
      });
      s.on('error', resolve);
    });
    assert.equal(err?.code, 'ECONNREFUSED');
  });
});

describe('startHttpApp', () => {
  let app: TestServer;
  let base: string;
  before(async () => {
    app = await startHttpApp();
    base = `http://127.0.0.1:${app.port}`;
  });
  after(() => app.close());

  it('echoes an HTTP/1.1 request with its body hash', async () => {
    const res = await curl([
      ...curlWriteOut(W),
      '--data-binary',
      'hello',
      '-H',
      'x-a: 1',
      `${base}/echo?q=1`,
    ]);
    assert.equal(res.code, 0, res.stderr);
    const { body, values } = parseCurlWrite(res.stdout, W);
    assert.deepEqual([values.http_code, values.http_version], ['200', '1.1']);
    const echo = JSON.parse(body) as EchoBody;
    assert.equal(echo.method, 'POST');
    assert.equal(echo.url, '/echo?q=1');
    assert.equal(echo.httpVersion, '1.1');
    assert.equal(echo.headers['x-a'], '1');
    assert.equal(echo.bodyBytes, 5);
    assert.equal(echo.bodySha256, '2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824');
  });

  it('echoes h2c with prior knowledge on the same port', async () => {
    const res = await curl(['--http2-prior-knowledge', ...curlWriteOut(W), `${base}/status/201`]);
    assert.equal(res.code, 0, res.stderr);
    const { body, values } = parseCurlWrite(res.stdout, W);
    assert.deepEqual([values.http_code, values.http_version], ['201', '2']);
    const echo = JSON.parse(body) as EchoBody;
    assert.equal(echo.httpVersion, '2.0');
    assert.equal(echo.headers[':path'], '/status/201');
  });

  it('streams /bytes/<n> and answers /slow and /continue', async () => {
    const n = 1_000_003;
    const sizes = await Promise.all([
      curl(['-o', '/dev/null', ...curlWriteOut(W), `${base}/bytes/${n}`]),
      curl(['--http2-prior-knowledge', '-o', '/dev/null', ...curlWriteOut(W), `${base}/bytes/${n}`]),
    ]);
    for (const r of sizes) assert.equal(parseCurlWrite(r.stdout, W).values.size_download, String(n));
    const sha = await new Promise<string>((resolve, reject) => {
      http.get(`${base}/bytes/${n}`, (res) => {
        const hash = createHash('sha256');
        res.on('data', (c: Buffer) => hash.update(c));
        res.on('end', () => resolve(hash.digest('hex')));
        res.on('error', reject);
      });
    });
    assert.equal(sha, bytesPatternSha256(n));
    const started = Date.now();
    const slow = await curl(['-o', '/dev/null', ...curlWriteOut(W), `${base}/slow/150`]);
    assert.equal(parseCurlWrite(slow.stdout, W).values.http_code, '200');
    assert.ok(Date.now() - started >= 140);
    const cont = await curl([
      '-v',
      '-H',
      'Expect: 100-continue',
      '--data-binary',
      'x'.repeat(10),
      `${base}/continue`,
    ]);
    assert.match(cont.stderr, /HTTP\/1\.1 100 Continue/);
    assert.equal((JSON.parse(cont.stdout) as EchoBody).bodyBytes, 10);
  });

  it('sends trailers on HTTP/1.1 (chunked) and h2', async () => {
    const h1 = await new Promise<http.IncomingMessage>((resolve, reject) => {
      http.get(`${base}/trailers`, (res) =>
        res
          .resume()
          .on('end', () => resolve(res))
          .on('error', reject),
      );
    });
    assert.equal(h1.headers['transfer-encoding'], 'chunked');
    assert.match(h1.trailers['x-checksum'] ?? '', /^[0-9a-f]{64}$/);
    const session = http2.connect(base);
    session.on('error', () => {});
    try {
      const trailers = await new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
        const req = session.request({ ':path': '/trailers' });
        req.on('trailers', resolve).on('error', reject).resume();
        req.end();
      });
      assert.match(String(trailers['x-checksum']), /^[0-9a-f]{64}$/);
    } finally {
      session.close();
    }
  });
});

describe('TCP and WebSocket apps', () => {
  const servers: TestServer[] = [];
  after(() => Promise.all(servers.map((s) => s.close())));

  it('echoes TCP until the client half-closes', async () => {
    const echo = await startTcpEcho();
    servers.push(echo);
    assert.equal((await tcpExchange(echo.port, { send: 'ping\n' })).toString(), 'ping\n');
  });

  it('speaks first from the banner server, then echoes', async () => {
    const banner = await startBannerServer('220 hello\r\n');
    servers.push(banner);
    assert.equal((await tcpExchange(banner.port, { expectBytes: 11 })).toString(), '220 hello\r\n');
    assert.equal((await tcpExchange(banner.port, { send: 'x' })).toString(), '220 hello\r\nx');
  });

  it('echoes WebSocket messages', async () => {
    const ws = await startWsEchoApp();
    servers.push(ws);
    assert.deepEqual(await wsRoundTrip(`ws://127.0.0.1:${ws.port}/chat`, ['a', 'bb']), ['a', 'bb']);
    assert.equal(ws.upgrades[0]?.upgrade, 'websocket');
  });
});

describe('startGrpcApp', () => {
  let app: TestServer;
  let target: string;
  before(async () => {
    app = await startGrpcApp();
    target = `127.0.0.1:${app.port}`;
  });
  after(() => app.close());

  it('answers unary calls with x-echo in initial and trailing metadata', async () => {
    const client = grpcClient(target);
    try {
      const ok = await unaryCall(client, { message: 'hi' }, { metadata: { 'x-echo': 'e1' } });
      assert.equal(ok.status.code, 0);
      assert.deepEqual(ok.replies, [{ message: 'hi', index: 0 }]);
      assert.deepEqual(ok.initialMetadata?.get('x-echo'), ['e1']);
      assert.deepEqual(ok.status.metadata.get('x-echo'), ['e1']);
      const failed = await unaryCall(client, { message: 'hi', failCode: 14 });
      assert.equal(failed.status.code, 14);
      assert.equal(failed.status.details, 'requested failure');
      assert.deepEqual(failed.replies, []);
      assert.equal(failed.initialMetadata, undefined, 'trailers-only');
      const late = await unaryCall(client, { delayMs: 2000 }, { deadlineMs: 100 });
      assert.equal(late.status.code, 4);
    } finally {
      client.close();
    }
  });

  it('streams from the server, and echoes client and bidi streams', async () => {
    const client = grpcClient(target);
    try {
      const out = await serverStreamCall(client, { message: 'm', count: 3 });
      assert.equal(out.status.code, 0);
      assert.deepEqual(
        out.replies.map((r) => r.index),
        [0, 1, 2],
      );
      const joined = await new Promise<string>((resolve, reject) => {
        const call = client.ClientStream(new grpc.Metadata(), {}, (err, reply) =>
          err ? reject(err) : resolve(`${reply?.message}/${reply?.index}`),
        );
        for (const message of ['a', 'b', 'c']) call.write({ message });
        call.end();
      });
      assert.equal(joined, 'abc/3');
      const bidi = client.Bidi();
      const got: string[] = [];
      bidi.on('data', (r: { message: string }) => got.push(r.message));
      bidi.write({ message: 'x' });
      bidi.write({ message: 'y' });
      bidi.end();
      await new Promise((resolve, reject) => bidi.on('end', resolve).on('error', reject));
      assert.deepEqual(got, ['x', 'y']);
    } finally {
      client.close();
    }
  });

  it('reaches the app through an HTTP CONNECT proxy, by option or by grpc_proxy', async () => {
    const connect = await startConnectRecorder({ 'echo.test:50051': app.port });
    try {
      const byOption = grpcClient('echo.test:50051', { connectProxy: `127.0.0.1:${connect.port}` });
      const a = await unaryCall(byOption, { message: 'via option' });
      byOption.close();
      assert.equal(a.status.code, 0, a.status.details);
      process.env.grpc_proxy = `http://127.0.0.1:${connect.port}`;
      const byEnv = grpcClient('echo.test:50051'); // the environment is read here, at channel creation
      delete process.env.grpc_proxy;
      const b = await unaryCall(byEnv, { message: 'via env' });
      byEnv.close();
      assert.equal(b.status.code, 0, b.status.details);
      assert.deepEqual(connect.targets, ['echo.test:50051', 'echo.test:50051']);
    } finally {
      delete process.env.grpc_proxy;
      await connect.close();
    }
  });
});

describe('helpers', () => {
  it('eventually retries until the assertion holds, and reports the last failure', async () => {
    let n = 0;
    assert.equal(await eventually(() => (++n < 3 ? assert.fail(`n=${n}`) : n), { intervalMs: 1 }), 3);
    await assert.rejects(
      eventually(() => assert.fail('never'), { timeoutMs: 30 }),
      /never/,
    );
  });

  it('onceLine finds a line across chunk boundaries', async () => {
    const s = new PassThrough();
    const line = onceLine(s, (l) => l.startsWith('{'), 1000);
    s.write('noise\n{"msg":');
    s.write('"x"}\nmore\n');
    assert.equal(await line, '{"msg":"x"}');
  });
});

const proxyBuilt = existsSync(join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js'));

describe('startProxy', { skip: !proxyBuilt && 'weft proxy is not built yet' }, () => {
  let app: TestServer;
  before(async () => {
    app = await startHttpApp();
  });
  after(() => app.close());

  it('starts on ephemeral ports, serves /metrics, and stops', async () => {
    const proxy = await startProxy({ args: ['--app-port', String(app.port)] });
    try {
      for (const addr of [proxy.outbound, proxy.inbound, proxy.admin]) {
        assert.match(String(addr), /^127\.0\.0\.1:\d+$/);
      }
      assert.equal(typeof (await proxy.metrics()), 'string');
    } finally {
      const exit = await proxy.stop();
      assert.ok(exit.code !== null || exit.signal !== null);
    }
  });

  it('reports an early exit with the logs', async () => {
    const err = await startProxy({ args: ['--connect-timeout-ms', 'soon'] }).then(
      () => assert.fail('started'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof ProxyStartError);
    assert.equal(err.code, 'WEFT_TEST_PROXY_EXITED');
    assert.ok(err.logs.length > 0);
  });

  it('starts a mesh pair and cleans it up', async () => {
    const pair = await startMeshPair({ authority: 'books:7002', appPort: app.port });
    await pair.cleanup();
    for (const p of [pair.inbound, pair.outbound]) {
      assert.ok(p.child.exitCode !== null || p.child.signalCode !== null);
    }
    assert.equal(existsSync(pair.destinationsPath), false);
  });
});

/**
 * A minimal HTTP CONNECT proxy for the self-test only: records each CONNECT target and tunnels
 * to 127.0.0.1:<port from `routes`>. (The real proxy under test is `weft proxy`.)
 */
async function startConnectRecorder(routes: Record<string, number>) {
  const targets: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    sockets.add(client);
    client.on('error', () => {});
    client.on('close', () => sockets.delete(client));
    let head = '';
    const onData = (chunk: Buffer) => {
      head += chunk.toString('latin1');
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      client.off('data', onData);
      const target = /^CONNECT (\S+) HTTP\/1\.1\r\n/.exec(head)?.[1] ?? '';
      targets.push(target);
      const port = routes[target];
      if (port === undefined) return void client.end('HTTP/1.1 502 Bad Gateway\r\n\r\n');
      const upstream = net.connect(port, '127.0.0.1', () => {
        client.write('HTTP/1.1 200 Connection established\r\n\r\n');
        const rest = Buffer.from(head.slice(end + 4), 'latin1');
        if (rest.length > 0) upstream.write(rest);
        client.pipe(upstream).pipe(client);
      });
      sockets.add(upstream);
      upstream.on('error', () => client.destroy());
      upstream.on('close', () => sockets.delete(upstream));
    };
    client.on('data', onData);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    targets,
    close: () => closeServer(server, sockets),
  };
}
