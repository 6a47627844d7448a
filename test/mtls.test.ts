/**
 * Automatic mTLS between real `weft proxy` processes (docs/identity.md), with certificates from a
 * real control plane: HTTP/1 (keep-alive pool and HTTP/2 mesh transport), h2c, gRPC, WebSocket
 * and opaque TCP travel over TLS 1.3 with client certificates; metrics carry
 * tls/server_id/client_id; the app gets the verified `weft-client-id` and never a forged one; a
 * peer presenting another identity than discovery promised gets nothing (502); and a relay
 * between the two proxies sees only TLS records. (openssl against the inbound port:
 * mtls-openssl.test.ts; rotation under traffic: mtls-rotation.test.ts.)
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import tls from 'node:tls';
import { stringify } from 'yaml';
import type { RunningControlPlane } from '../src/control/control-plane.js';
import { parseHostPort } from '../src/lib/addr.js';
import { newLogger } from '../src/lib/log.js';
import { MESH_ALPN } from '../src/proxy/tls/mesh-alpn.js';
import {
  type EchoBody,
  grpcClient,
  type HttpApp,
  startGrpcApp,
  startHttpApp,
  startTcpEcho,
  startWsEchoApp,
  type TestServer,
  tcpExchange,
  unaryCall,
  type WsEchoApp,
  wsRoundTrip,
} from './support/apps.js';
import { startTestControlPlane } from './support/control-plane.js';
import { curl, curlWriteOut, parseCurlWrite } from './support/curl.js';
import { eventually } from './support/eventually.js';
import { spiffe, startMeshedProxy } from './support/meshed-proxy.js';
import { sampleSum } from './support/prom-text.js';
import type { ProxyProcess } from './support/proxy-process.js';

const WEB = spiffe('web');
const BOOKS = spiffe('books');
const AUTHORS = spiffe('authors');
const ECHO = spiffe('echo');
const TCP = spiffe('tcp');
const CHAT = spiffe('chat');

let dir: string;
let control: RunningControlPlane;
let httpApp: HttpApp;
let grpcApp: TestServer;
let tcpApp: TestServer;
let wsApp: WsEchoApp;
let relay: Relay;
let inBooks: ProxyProcess;
let inEcho: ProxyProcess;
let inTcp: ProxyProcess;
let inWs: ProxyProcess;
let out: ProxyProcess;
/** Like `out`, with HTTP/1 carried to peers over the multiplexed HTTP/2 mesh transport. */
let outH2: ProxyProcess;
const started: ProxyProcess[] = [];
const meshed = async (account: string, args: string[]) => {
  const proxy = await startMeshedProxy(control, account, args);
  started.push(proxy);
  return proxy;
};

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'weft-mtls-test-'));
  control = await startTestControlPlane({ stateDir: dir, log: newLogger('error', {}, () => {}) });
  [httpApp, grpcApp, tcpApp, wsApp] = await Promise.all([
    startHttpApp(),
    startGrpcApp(),
    startTcpEcho(),
    startWsEchoApp(),
  ]);
  [inBooks, inEcho, inTcp, inWs] = await Promise.all([
    meshed('books', ['--app-port', String(httpApp.port)]),
    meshed('echo', ['--app-port', String(grpcApp.port)]),
    // The app port is declared opaque: the inbound proxy skips HTTP detection but must still
    // terminate the mesh's TLS.
    meshed('tcp', ['--app-port', String(tcpApp.port), '--opaque-ports', String(tcpApp.port)]),
    meshed('chat', ['--app-port', String(wsApp.port)]),
  ]);
  relay = await startRelay(inBooks.inbound!);
  const destinations = join(dir, 'destinations.yaml');
  const endpoint = (address: string, identity?: string) => ({ address, meshed: true, identity });
  await writeFile(
    destinations,
    stringify({
      destinations: [
        { authority: 'books:7002', endpoints: [endpoint(inBooks.inbound!, BOOKS)] },
        // Discovery promises authors, but the workload there is books.
        { authority: 'authors:7003', endpoints: [endpoint(inBooks.inbound!, AUTHORS)] },
        // A meshed endpoint discovery gives no identity: plaintext.
        { authority: 'plain:7004', endpoints: [endpoint(inBooks.inbound!)] },
        { authority: 'relayed:7005', endpoints: [endpoint(relay.addr, BOOKS)] },
        { authority: 'echo:50051', endpoints: [endpoint(inEcho.inbound!, ECHO)] },
        { authority: 'tcp.weft.test:9000', opaque: true, endpoints: [endpoint(inTcp.inbound!, TCP)] },
        { authority: 'chat:9000', endpoints: [endpoint(inWs.inbound!, CHAT)] },
      ],
    }),
  );
  const outArgs = ['--destinations', destinations, '--inbound-listen-addr', 'none'];
  [out, outH2] = await Promise.all([
    meshed('web', [...outArgs, '--upstream', 'tcp.weft.test:9000=0']),
    meshed('web', [...outArgs, '--mesh-http1-transport', 'h2']),
  ]);
});

after(async () => {
  await Promise.all(started.map((p) => p.stop()));
  relay?.close();
  await Promise.all([httpApp?.close(), grpcApp?.close(), tcpApp?.close(), wsApp?.close()]);
  await control?.shutdown();
  await rm(dir, { recursive: true, force: true });
});

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One HTTP/1.1 request to `addr` naming `authority` (a new connection each time). */
function request(
  addr: string,
  authority: string,
  path: string,
  opts: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<Reply> {
  const { host, port } = parseHostPort(addr);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host,
        port,
        path,
        method: opts.method ?? 'GET',
        headers: { host: authority, ...opts.headers },
        agent: false,
        timeout: 10_000,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** A request through `proxy` with a forged weft-client-id; resolves with what the app saw (200). */
async function echoThrough(proxy: ProxyProcess, authority: string, path: string): Promise<EchoBody> {
  const reply = await request(proxy.outbound!, authority, path, {
    headers: { 'weft-client-id': spiffe('forged') },
  });
  assert.equal(reply.status, 200, reply.body);
  return JSON.parse(reply.body) as EchoBody;
}

describe('two proxies with identities', { timeout: 120_000 }, () => {
  it('carries HTTP/1 over mTLS; the app gets the verified weft-client-id, never the forged one', async () => {
    const echo = await echoThrough(out, 'books:7002', '/hello');
    assert.equal(echo.headers['weft-client-id'], WEB);
    assert.equal(echo.url, '/hello');
  });

  it('carries h2c from the app over mTLS the same way', async () => {
    const names = ['http_code', 'http_version'];
    const r = await curl([
      '--http2-prior-knowledge',
      '-H',
      'host: books:7002',
      '-H',
      `weft-client-id: ${spiffe('forged')}`,
      ...curlWriteOut(names),
      `http://${out.outbound}/h2`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const { body, values } = parseCurlWrite(r.stdout, names);
    assert.deepEqual(values, { http_code: '200', http_version: '2' });
    const echo = JSON.parse(body) as EchoBody;
    assert.equal(echo.headers['weft-client-id'], WEB);
    assert.equal(echo.httpVersion, '2.0');
  });

  it('carries gRPC over mTLS', async () => {
    const client = grpcClient('echo:50051', { connectProxy: out.outbound! });
    try {
      const r = await unaryCall(client, { message: 'over mtls' }, { deadlineMs: 10_000 });
      assert.equal(r.status.code, 0, r.status.details);
      assert.equal(r.replies[0]?.message, 'over mtls');
    } finally {
      client.close();
    }
  });

  it('carries opaque TCP over mTLS, half-close included', async () => {
    const payload = Buffer.alloc(256 * 1024, 'opaque bytes ');
    const port = parseHostPort(out.upstreams['tcp.weft.test:9000']!).port;
    const echoed = await tcpExchange(port, { send: payload, timeoutMs: 10_000 });
    assert.ok(echoed.equals(payload), `echoed ${echoed.length} of ${payload.length} bytes`);
  });

  it('labels metrics with tls, server_id and client_id', async () => {
    await eventually(async () => {
      const o = await out.metrics();
      const booksOut = { direction: 'outbound', authority: 'books:7002', tls: 'true', server_id: BOOKS };
      assert.equal(sampleSum(o, 'request_total', booksOut), 2);
      assert.equal(sampleSum(o, 'response_total', { ...booksOut, status_code: '200' }), 2);
      assert.equal(
        sampleSum(o, 'request_total', { authority: 'echo:50051', tls: 'true', server_id: ECHO }),
        1,
      );
      const tcpOut = { direction: 'outbound', peer: 'dst', tls: 'true', server_id: TCP };
      assert.equal(sampleSum(o, 'tcp_open_total', tcpOut), 1);

      const i = await inBooks.metrics();
      const booksIn = { direction: 'inbound', authority: 'books:7002', tls: 'true', client_id: WEB };
      assert.equal(sampleSum(i, 'request_total', booksIn), 2);
      // The accepted connections themselves: counted with the client's identity once mTLS is up.
      const srcIn = { direction: 'inbound', peer: 'src', tls: 'true', client_id: WEB };
      assert.ok(sampleSum(i, 'tcp_open_total', srcIn) >= 1, 'no mTLS connection counted as accepted');
      assert.equal(sampleSum(i, 'tcp_open_total', { direction: 'inbound', peer: 'src', tls: 'false' }), 0);
      assert.equal(sampleSum(i, 'response_total', { ...booksIn, status_code: '200' }), 2);
      assert.equal(
        sampleSum(i, 'protocol_detect_total', { direction: 'inbound', result: 'mesh-tls' }) >= 1,
        true,
      );
      const g = await inEcho.metrics();
      assert.equal(sampleSum(g, 'request_total', { direction: 'inbound', tls: 'true', client_id: WEB }), 1);
      const t = await inTcp.metrics();
      assert.equal(
        sampleSum(t, 'tcp_open_total', { direction: 'inbound', peer: 'dst', tls: 'true', client_id: WEB }),
        1,
      );
      // An opaque app port: no protocol detection, only the mesh's ClientHello looked for.
      assert.equal(
        sampleSum(t, 'tcp_open_total', { direction: 'inbound', peer: 'src', tls: 'true', client_id: WEB }),
        1,
      );
    });
  });

  it('carries HTTP/1 over the HTTP/2 mesh transport through mTLS', async () => {
    const echo = await echoThrough(outH2, 'books:7002', '/over-h2');
    assert.equal(echo.headers['weft-client-id'], WEB);
    assert.equal(echo.httpVersion, '1.1', 'restored to HTTP/1.1 by the inbound proxy');
    const o = await outH2.metrics();
    assert.equal(
      sampleSum(o, 'request_total', { authority: 'books:7002', tls: 'true', server_id: BOOKS }),
      1,
    );
  });

  it('carries WebSocket upgrades over mTLS; the app gets weft-client-id, never the forged one', async () => {
    const replies = await wsRoundTrip(`ws://${out.outbound}/chat`, ['one', 'two'], {
      headers: { host: 'chat:9000', 'weft-client-id': spiffe('forged') },
    });
    assert.deepEqual(replies, ['one', 'two']);
    assert.equal(wsApp.upgrades.at(-1)?.['weft-client-id'], WEB);
    await eventually(async () => {
      const labels = { authority: 'chat:9000', status_code: '101', tls: 'true', server_id: CHAT };
      assert.equal(sampleSum(await out.metrics(), 'response_total', labels), 1);
      const w = await inWs.metrics();
      assert.equal(
        sampleSum(w, 'response_total', { direction: 'inbound', status_code: '101', client_id: WEB }),
        1,
      );
    });
  });

  it('reaches an endpoint without identity in plaintext, labelled with the reason', async () => {
    const echo = await echoThrough(out, 'plain:7004', '/plain');
    assert.equal(echo.headers['weft-client-id'], undefined, 'no identity without mTLS, and no forged one');
    await eventually(async () => {
      const o = await out.metrics();
      assert.equal(
        sampleSum(o, 'request_total', {
          authority: 'plain:7004',
          tls: 'false',
          no_tls_reason: 'no_identity',
        }),
        1,
      );
      const i = await inBooks.metrics();
      assert.equal(
        sampleSum(i, 'request_total', {
          direction: 'inbound',
          authority: 'plain:7004',
          tls: 'false',
          no_tls_reason: 'no_tls_from_remote',
        }),
        1,
      );
      const plainSrc = {
        direction: 'inbound',
        peer: 'src',
        tls: 'false',
        no_tls_reason: 'no_tls_from_remote',
      };
      assert.ok(sampleSum(i, 'tcp_open_total', plainSrc) >= 1, 'the plaintext connection counted as such');
    });
  });

  // Both outbound proxies already hold a connection to the same address verified as books: the
  // pools are keyed by identity too, or these requests would ride it.
  it('answers 502 when the peer is not the identity discovery promised, and the app sees nothing', async () => {
    const before = httpApp.requestCount();
    for (const [i, proxy] of [out, out, outH2].entries()) {
      const reply = await request(proxy.outbound!, 'authors:7003', `/must-not-arrive-${i}`, {
        method: 'POST',
        body: 'secret',
      });
      assert.equal(reply.status, 502, reply.body);
      assert.equal(reply.headers['weft-proxy-error'], 'peer identity mismatch');
      assert.match(reply.body, new RegExp(`presented ${BOOKS}, expected ${AUTHORS}`));
    }
    assert.equal(httpApp.requestCount(), before);
    await eventually(async () => {
      const o = await out.metrics();
      const labels = { authority: 'authors:7003', status_code: '502', error: 'peer identity mismatch' };
      assert.equal(sampleSum(o, 'response_total', labels), 2);
      assert.equal(sampleSum(await outH2.metrics(), 'response_total', labels), 1);
    });
    assert.equal(httpApp.requestCount(), before);
  });

  it('counts a refused mesh-TLS handshake as refused, not as an accepted plaintext connection', async () => {
    const plainSrc = { direction: 'inbound', peer: 'src', tls: 'false' };
    const refused = { direction: 'inbound', reason: 'tls_handshake' };
    const i0 = await inBooks.metrics();
    const [plainBefore, refusedBefore] = [
      sampleSum(i0, 'tcp_open_total', plainSrc),
      sampleSum(i0, 'tcp_refused_total', refused),
    ];
    // The mesh's ALPN, but no client certificate: the inbound proxy ends the handshake.
    const { host, port } = parseHostPort(inBooks.inbound!);
    await new Promise<void>((resolve) => {
      const s = tls.connect({ host, port, ALPNProtocols: [MESH_ALPN], rejectUnauthorized: false });
      s.on('error', () => {});
      s.on('close', () => resolve());
      s.on('secureConnect', () => s.write('GET / HTTP/1.1\r\n\r\n'));
      s.setTimeout(10_000, () => s.destroy());
    });
    await eventually(async () =>
      assert.equal(sampleSum(await inBooks.metrics(), 'tcp_refused_total', refused), refusedBefore + 1),
    );
    // Once the refusal is counted, the connection's close has been handled: a later scrape must
    // still not count it as an accepted plaintext connection.
    assert.equal(sampleSum(await inBooks.metrics(), 'tcp_open_total', plainSrc), plainBefore);
  });
});

describe('bytes on the wire between the proxies', { timeout: 60_000 }, () => {
  it('are TLS records: the request path and body never appear in plaintext', async () => {
    const path = '/wire-secret-path-7f3a';
    const body = 'wire-secret-body-91c2';
    const reply = await request(out.outbound!, 'relayed:7005', path, { method: 'POST', body });
    assert.equal(reply.status, 200, reply.body);
    const echo = JSON.parse(reply.body) as EchoBody;
    assert.equal(echo.url, path);
    assert.equal(echo.headers['weft-client-id'], WEB);
    const { up, down } = relay.captured();
    assert.ok(up.length > 0 && down.length > 0);
    assert.deepEqual(
      [...up.subarray(0, 2)],
      [0x16, 0x03],
      'the client speaks first with a TLS handshake record',
    );
    assert.deepEqual(
      [...down.subarray(0, 2)],
      [0x16, 0x03],
      'the server answers with a TLS handshake record',
    );
    for (const secret of [path, body, 'books:7002', 'weft-client-id']) {
      assert.equal(up.includes(secret), false, `${secret} in plaintext towards the server`);
      assert.equal(down.includes(secret), false, `${secret} in plaintext towards the client`);
    }
    // Every byte is a TLS record: walk the record headers end to end.
    for (const bytes of [up, down]) {
      let at = 0;
      while (at + 5 <= bytes.length) {
        assert.ok([0x14, 0x15, 0x16, 0x17].includes(bytes[at]!), `record type ${bytes[at]} at ${at}`);
        assert.equal(bytes[at + 1], 0x03);
        at += 5 + bytes.readUInt16BE(at + 3);
      }
      assert.equal(at, bytes.length, 'the capture ends on a record boundary');
    }
  });
});

interface Relay {
  readonly addr: string;
  /** Every byte relayed so far: outbound proxy → inbound proxy (`up`) and back (`down`). */
  captured(): { up: Buffer; down: Buffer };
  close(): void;
}

/** A TCP relay on 127.0.0.1:0 to `target` that records what passes through. */
async function startRelay(target: string): Promise<Relay> {
  const up: Buffer[] = [];
  const down: Buffer[] = [];
  const sockets = new Set<net.Socket>();
  const { host, port } = parseHostPort(target);
  const server = net.createServer((client) => {
    const upstream = net.connect({ host, port });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.on('data', (c: Buffer) => up.push(c));
    upstream.on('data', (c: Buffer) => down.push(c));
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    addr: `127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    captured: () => ({ up: Buffer.concat(up), down: Buffer.concat(down) }),
    close: () => {
      server.close();
      for (const s of sockets) s.destroy();
    },
  };
}
