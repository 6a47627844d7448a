/**
 * HTTP fidelity through two proxies with the real curl: curl → outbound → (the mesh transport:
 * HTTP/1.1 pool by default, HTTP/2 in the -mesh-h2 run) → inbound → a real HTTP/1.1 + h2c app. HTTP/1.1 GET/POST, chunked request bodies,
 * keep-alive, HEAD, 204/304, 100-continue, trailers, hop-by-hop headers; h2c prior knowledge;
 * the outbound proxy used as an `HTTP_PROXY` (absolute-form) and through CONNECT tunnels.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import * as http from 'node:http';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { tcpExchange } from './support/app-tcp.js';
import { type EchoBody, echoHandler, type HttpApp, startHttpApp } from './support/apps.js';
import { type CurlResult, curl, curlWriteOut, parseCurlWrite } from './support/curl.js';
import { type MeshPair, startMeshPair } from './support/proxy-process.js';

const AUTHORITY = 'books:7002';
const HOST = `Host: ${AUTHORITY}`;
/** curl's own bound on every transfer: a proxy that hangs fails the test instead of stalling it. */
const MAX_TIME = ['--max-time', '12'];
const W = ['http_code', 'http_version', 'size_download', 'num_connects'] as const;

let app: HttpApp;
let pair: MeshPair;
let outbound: string;
let dir: string;
/** 256 KiB of random bytes, and its sha256. */
let bodyFile: string;
let bodySha: string;
let dumps = 0;

/**
 * The echo app, plus `/cookies`: two Set-Cookie fields, an end-to-end field, and response
 * hop-by-hop fields (a Connection-named `x-bar`, `Keep-Alive`) that no proxy may pass on.
 */
function handler(req: http.IncomingMessage, res: http.ServerResponse): void {
  if (req.url === '/early-hints' || req.url === '/early-hint') {
    req.resume();
    // Two links: node:http writes them as one Link field, joined with ", ".
    const style = '</style.css>; rel=preload; as=style';
    res.writeEarlyHints({
      link: req.url === '/early-hint' ? style : [style, '</app.js>; rel=preload; as=script'],
      'x-hint': 'early',
    });
    setTimeout(() => res.end('final'), 50);
    return;
  }
  if (req.url !== '/cookies') {
    echoHandler(req, res);
    return;
  }
  req.resume();
  // HTTP/2 forbids connection-specific fields, so only an HTTP/1 response carries them.
  const hopByHop =
    req.httpVersionMajor === 1 ? { connection: 'x-bar', 'x-bar': '1', 'keep-alive': 'timeout=99' } : {};
  res.writeHead(200, {
    'set-cookie': ['a=1; Path=/', 'b=2; Path=/'],
    'x-end-resp': 'kept',
    ...hopByHop,
    'content-length': 2,
  });
  res.end('ok');
}

before(async () => {
  app = await startHttpApp(handler);
  pair = await startMeshPair({ authority: AUTHORITY, appPort: app.port });
  outbound = pair.outbound.outbound!;
  dir = await mkdtemp(join(tmpdir(), 'weft-http-fidelity-'));
  const body = randomBytes(256 * 1024);
  bodyFile = join(dir, 'body.bin');
  await writeFile(bodyFile, body);
  bodySha = sha256(body);
});

after(async () => {
  await pair?.cleanup();
  await app?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** curl to the outbound proxy (origin-form, Host = the service) with `-w` values parsed. */
async function viaOutbound(args: readonly string[], path: string) {
  const res = await curl([...MAX_TIME, ...curlWriteOut(W), '-H', HOST, ...args, `http://${outbound}${path}`]);
  assert.equal(res.code, 0, res.stderr);
  return { ...parseCurlWrite(res.stdout, W), stderr: res.stderr };
}

/** Runs curl with `-D <file>`: `dump` holds every response head curl saw, then any trailers. */
async function curlDump(
  args: string[],
  env?: Record<string, string>,
): Promise<CurlResult & { dump: string }> {
  const file = join(dir, `head-${++dumps}.txt`);
  const res = await curl([...MAX_TIME, '-D', file, ...args], { env });
  assert.equal(res.code, 0, res.stderr);
  return { ...res, dump: await readFile(file, 'latin1') };
}

/** Values of every `name:` line in a header dump (case-insensitive), in order. */
function fieldValues(dump: string, name: string): string[] {
  const prefix = `${name.toLowerCase()}:`;
  return dump
    .split('\r\n')
    .filter((l) => l.toLowerCase().startsWith(prefix))
    .map((l) => l.slice(prefix.length).trim());
}

function echoOf(body: string): EchoBody {
  return JSON.parse(body) as EchoBody;
}

describe('HTTP/1.1 through outbound → inbound', () => {
  it('GETs and POSTs, the app seeing the service authority and the exact body', async () => {
    const get = await viaOutbound([], '/echo?q=1');
    assert.deepEqual([get.values.http_code, get.values.http_version], ['200', '1.1']);
    const echo = echoOf(get.body);
    assert.deepEqual([echo.method, echo.url, echo.httpVersion], ['GET', '/echo?q=1', '1.1']);
    assert.equal(echo.headers.host, AUTHORITY);
    assert.equal(echo.headers['weft-orig-proto'], undefined, 'the inbound proxy consumes its marker');

    const post = await viaOutbound(['--data-binary', `@${bodyFile}`], '/upload');
    assert.equal(post.values.http_code, '200');
    const posted = echoOf(post.body);
    assert.deepEqual([posted.method, posted.bodyBytes, posted.bodySha256], ['POST', 256 * 1024, bodySha]);
    assert.equal(posted.headers['content-length'], String(256 * 1024));
    // It really went through the inbound proxy, not around it.
    assert.match(await pair.inbound.metrics(), /request_total\{direction="inbound",authority="books:7002"/);
  });

  it('streams a chunked request body through intact', async () => {
    const res = await viaOutbound(
      ['-H', 'Transfer-Encoding: chunked', '--data-binary', `@${bodyFile}`],
      '/chunked',
    );
    assert.equal(res.values.http_code, '200');
    const echo = echoOf(res.body);
    assert.deepEqual([echo.bodyBytes, echo.bodySha256], [256 * 1024, bodySha]);
    assert.equal(echo.headers['transfer-encoding'], 'chunked');
    assert.equal(echo.headers['content-length'], undefined);
  });

  it('keeps the client connection alive across requests', async () => {
    const urls = ['/one', '/two', '/three'].flatMap((p) => ['-o', '/dev/null', `http://${outbound}${p}`]);
    const res = await curl([...MAX_TIME, '-v', '-w', '%{http_code} %{num_connects}\\n', '-H', HOST, ...urls]);
    assert.equal(res.code, 0, res.stderr);
    assert.deepEqual(res.stdout.trim().split('\n'), ['200 1', '200 0', '200 0']);
    assert.match(res.stderr, /Re-using existing connection/);
  });

  it('answers HEAD with the content-length and no body, and the connection stays usable', async () => {
    const res = await curl([
      ...MAX_TIME,
      ...['--head', '-H', HOST, `http://${outbound}/bytes/1000`],
      ...['--next', '-o', '/dev/null', '-w', '%{http_code} %{size_download} %{num_connects}'],
      ...['-H', HOST, `http://${outbound}/bytes/10`],
    ]);
    assert.equal(res.code, 0, res.stderr);
    const [head, next] = res.stdout.split('\r\n\r\n');
    assert.match(head, /^HTTP\/1\.1 200 /);
    assert.deepEqual(fieldValues(head, 'content-length'), ['1000']);
    assert.equal(next, '200 10 0', 'no stray body bytes before the next response, on the same connection');

    const h2 = await curlDump([
      '--http2-prior-knowledge',
      '--head',
      '-H',
      HOST,
      `http://${outbound}/bytes/1000`,
    ]);
    assert.match(h2.dump, /^HTTP\/2 200/);
    assert.deepEqual(fieldValues(h2.dump, 'content-length'), ['1000']);
  });

  it('passes 204 and 304 without a body, over HTTP/1.1 and h2c', async () => {
    const paths = ['/status/204', '/status/304', '/bytes/5'];
    const res = await curl([
      ...MAX_TIME,
      ...['-w', '%{http_code} %{size_download} %{num_connects}\\n', '-H', HOST],
      ...paths.flatMap((p) => ['-o', '/dev/null', `http://${outbound}${p}`]),
    ]);
    assert.equal(res.code, 0, res.stderr);
    // The same connection carries the next response: no stray body bytes came after 204/304.
    assert.deepEqual(res.stdout.trim().split('\n'), ['204 0 1', '304 0 0', '200 5 0']);
    // curl 7.88 cannot reuse an h2c prior-knowledge connection for a second URL (even straight
    // to the app), so h2c gets one invocation per request.
    for (const [path, code] of [
      ['/status/204', '204'],
      ['/status/304', '304'],
    ]) {
      const h2 = await viaOutbound(['--http2-prior-knowledge'], path);
      assert.deepEqual([h2.values.http_code, h2.values.http_version, h2.body], [code, '2', '']);
    }
  });

  it('relays 100 Continue from the app, then the body, over HTTP/1.1 and h2c', async () => {
    for (const [proto, interim] of [
      [[], /< HTTP\/1\.1 100 Continue/],
      [['--http2-prior-knowledge'], /< HTTP\/2 100/],
    ] as const) {
      const started = Date.now();
      // If no proxy relayed the 100, curl would wait this long before sending the body anyway.
      const res = await viaOutbound(
        [
          ...proto,
          '-v',
          '--expect100-timeout',
          '15',
          '-H',
          'Expect: 100-continue',
          '--data-binary',
          `@${bodyFile}`,
        ],
        '/continue',
      );
      assert.ok(Date.now() - started < 10_000, 'the body waited for curl to give up on 100 Continue');
      assert.match(res.stderr, interim);
      const echo = echoOf(res.body);
      assert.deepEqual([echo.bodyBytes, echo.bodySha256], [256 * 1024, bodySha]);
      assert.equal(echo.headers.expect, '100-continue');
    }
  });

  it('relays 103 Early Hints with their fields before the final response, but not to HTTP/1.0', async () => {
    for (const proto of [[], ['--http2-prior-knowledge']]) {
      const res = await viaOutbound([...proto, '-v'], '/early-hints');
      assert.equal(res.values.http_code, '200', res.stderr);
      // The interim head curl printed: its status line, then its fields up to the final head.
      const interim = /< HTTP\/[\d.]+ 103[^\n]*\n((?:< (?!HTTP\/)[^\n]*\n)*)< HTTP\/[\d.]+ 200/.exec(
        res.stderr,
      );
      assert.ok(interim, `${proto}: no 103 before the 200 in\n${res.stderr}`);
      const fields = interim[1].toLowerCase();
      assert.match(
        fields,
        /< link: <\/style\.css>; rel=preload; as=style, <\/app\.js>; rel=preload; as=script\r?\n/,
        `${proto}`,
      );
      assert.match(fields, /< x-hint: early\r?\n/, `${proto}`);
      assert.equal(res.body, 'final');
    }
    const old = await viaOutbound(['-v', '--http1.0'], '/early-hints');
    assert.equal(old.values.http_code, '200', old.stderr);
    assert.doesNotMatch(old.stderr, / 103/);
    assert.equal(old.body, 'final');
  });

  it('keeps pipelined responses whole: no 1xx for a response still queued behind an earlier one', async () => {
    const port = Number(outbound.split(':')[1]);
    // The first response takes 300 ms; the second's 103 comes while it waits its turn.
    const send = `GET /slow/300 HTTP/1.1\r\n${HOST}\r\n\r\nGET /early-hint HTTP/1.1\r\n${HOST}\r\nConnection: close\r\n\r\n`;
    const text = (await tcpExchange(port, { send, end: false, timeoutMs: 15_000 })).toString('latin1');
    const second = text.indexOf('HTTP/1.1 200', 1);
    assert.ok(text.startsWith('HTTP/1.1 200') && second > 0, text);
    const head = text.slice(second, text.indexOf('\r\n\r\n', second) + 4);
    assert.match(head, /\r\ncontent-length: 5\r\n/i, text);
    assert.equal(text.slice(second + head.length), 'final', text);
  });

  it('relays a 100 Continue for a pipelined request once its turn comes, so a client holding its body gets it', async () => {
    const port = Number(outbound.split(':')[1]);
    const socket = net.connect(port, '127.0.0.1');
    let text = '';
    socket.setEncoding('latin1').on('data', (d: string) => (text += d));
    const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    socket.setTimeout(10_000, () => socket.destroy()); // a proxy that never answers fails, not hangs
    socket.write(
      `GET /slow/300 HTTP/1.1\r\n${HOST}\r\n\r\n` +
        `POST /echo HTTP/1.1\r\n${HOST}\r\nExpect: 100-continue\r\nContent-Length: 5\r\nConnection: close\r\n\r\n`,
    );
    // The body waits for the 100 (at most 5 s: a client gives up waiting, and so does this test).
    let sawContinue = false;
    for (let i = 0; i < 100 && !sawContinue; i++) {
      await new Promise((r) => setTimeout(r, 50));
      sawContinue = text.includes('HTTP/1.1 100 Continue\r\n\r\n');
    }
    socket.write('hello'); // not end(): node:http drops what a half-closed client still waits for
    await closed;
    assert.ok(sawContinue, `no 100 Continue within 5 s:\n${text}`);
    // In order: the first response whole, then the 100, then the second response.
    const continueAt = text.indexOf('HTTP/1.1 100 Continue');
    assert.ok(text.startsWith('HTTP/1.1 200') && text.lastIndexOf('HTTP/1.1 200') > continueAt, text);
    assert.equal(echoOf(text.slice(text.indexOf('\r\n\r\n', continueAt + 25) + 4)).bodyBytes, 5, text);
  });

  it("ignores an HTTP/1.0 client's 100-continue expectation: no 1xx back, none asked of the app", async () => {
    const port = Number(outbound.split(':')[1]);
    const send = `POST /echo HTTP/1.0\r\n${HOST}\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi`;
    const text = (await tcpExchange(port, { send, end: false, timeoutMs: 15_000 })).toString('latin1');
    assert.match(text, /^HTTP\/1\.[01] 200 /, text);
    const echo = echoOf(text.slice(text.indexOf('\r\n\r\n') + 4));
    assert.equal(echo.headers.expect, undefined);
    assert.equal(echo.bodyBytes, 2);
  });

  it('delivers request trailers from an HTTP/1.1 chunked client and from an h2c client to the app', async () => {
    const [host, port] = outbound.split(':');
    // HTTP/1.1: a chunked body (no Content-Length) with a trailer section.
    const h1 = await new Promise<EchoBody>((resolve, reject) => {
      const req = http.request({
        host,
        port: Number(port),
        method: 'POST',
        path: '/req-trailers',
        headers: { host: AUTHORITY, trailer: 'x-sum' },
      });
      req.on('response', (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (c: string) => (text += c));
        res.on('end', () => resolve(JSON.parse(text) as EchoBody));
      });
      req.on('error', reject);
      req.write('part one, ');
      req.addTrailers({ 'x-sum': 'abc123', 'x-other': 'two' });
      req.end('part two');
    });
    assert.equal(h1.bodyBytes, 18);
    assert.deepEqual([h1.trailers['x-sum'], h1.trailers['x-other']], ['abc123', 'two'], JSON.stringify(h1));
    // h2c prior knowledge: the request ends with a trailing HEADERS frame.
    const session = http2.connect(`http://${outbound}`);
    try {
      const h2 = await new Promise<EchoBody>((resolve, reject) => {
        const stream = session.request(
          { ':method': 'POST', ':path': '/req-trailers', ':authority': AUTHORITY },
          { waitForTrailers: true },
        );
        stream.on('wantTrailers', () => stream.sendTrailers({ 'x-sum': 'def456' }));
        let text = '';
        stream.setEncoding('utf8').on('data', (c: string) => (text += c));
        stream.on('end', () => resolve(JSON.parse(text) as EchoBody));
        stream.on('error', reject);
        stream.end('h2 body');
      });
      assert.equal(h2.bodyBytes, 7);
      assert.equal(h2.trailers['x-sum'], 'def456', JSON.stringify(h2));
    } finally {
      session.close();
    }
  });

  it('delivers response trailers to an HTTP/1.1 chunked client and to an h2c client', async () => {
    for (const proto of [[], ['--http2-prior-knowledge']]) {
      const res = await curlDump([...proto, '-H', HOST, `http://${outbound}/trailers`]);
      const blocks = res.dump.split('\r\n\r\n');
      const trailers = blocks[blocks.length - 1];
      assert.deepEqual(fieldValues(trailers, 'x-checksum'), [sha256(res.stdout)], `${proto}: ${res.dump}`);
      if (proto.length === 0) assert.deepEqual(fieldValues(blocks[0], 'transfer-encoding'), ['chunked']);
    }
  });

  it('drops hop-by-hop request fields and keeps end-to-end ones', async () => {
    const res = await viaOutbound(
      [
        ...['-H', 'Connection: x-foo', '-H', 'x-foo: 1', '-H', 'Keep-Alive: timeout=9'],
        ...['-H', 'Proxy-Connection: keep-alive', '-H', 'x-end: kept', '-H', 'Cookie: a=1; b=2'],
        ...['-H', 'x-multi: a', '-H', 'x-multi: b'],
      ],
      '/hop',
    );
    const { headers } = echoOf(res.body);
    for (const name of ['x-foo', 'keep-alive', 'proxy-connection'])
      assert.equal(headers[name], undefined, name);
    assert.equal(headers.connection, 'keep-alive', "only the inbound proxy's own connection field");
    assert.equal(headers['x-end'], 'kept');
    assert.equal(headers.cookie, 'a=1; b=2');
    assert.equal(headers['x-multi'], 'a, b', 'both fields, in order');
  });

  it('declines an h2c upgrade offer (curl --http2): served as HTTP/1.1, the offer never reaching the app', async () => {
    const outputs = ['/first', '/second'].map((p) => [join(dir, `upgrade${p.slice(1)}.json`), p]);
    const res = await curl([
      ...MAX_TIME,
      ...['--http2', '-v', '-w', '%{http_code} %{http_version} %{num_connects}\\n', '-H', HOST],
      ...outputs.flatMap(([file, path]) => ['-o', file, `http://${outbound}${path}`]),
    ]);
    assert.equal(res.code, 0, res.stderr);
    // The connection stays HTTP, so the second request is routed (not tunnelled) on it. (Under
    // load curl's second offer can arrive before the proxy saw the first response finish: the
    // pipelined test below covers that; curl's -v trace in the message says why if reuse fails.)
    assert.deepEqual(res.stdout.trim().split('\n'), ['200 1.1 1', '200 1.1 0'], res.stderr);
    for (const [file, path] of outputs) {
      const echo = echoOf(await readFile(file, 'utf8'));
      assert.equal(echo.url, path);
      assert.equal(echo.headers.upgrade, undefined);
      assert.equal(echo.headers['http2-settings'], undefined);
      assert.equal(echo.headers.connection, 'keep-alive');
    }
  });

  it('serves pipelined requests that each offer h2c, in order, on one connection', async () => {
    // Both in one write: the second offer reaches the proxy while the first response is still in
    // flight, as it does under load when curl sends its next request before the proxy has seen
    // its last write finish. It must wait its turn, not stall behind the first response until
    // the keep-alive timeout (5 s) closes the connection; and that timer, armed when the first
    // response finished, must not cut the second one short (its app takes 6 s).
    const offer =
      'Connection: Upgrade, HTTP2-Settings%s\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n';
    const request = (path: string, close: boolean) =>
      `GET ${path} HTTP/1.1\r\nHost: ${AUTHORITY}\r\n${offer.replace('%s', close ? ', close' : '')}\r\n`;
    const port = Number(outbound.slice(outbound.lastIndexOf(':') + 1));
    const send = request('/first', false) + request('/slow/6000', true);
    const text = (await tcpExchange(port, { send, end: false, timeoutMs: 15_000 })).toString('latin1');
    const responses = text.split(/(?=HTTP\/1\.1 )/);
    assert.deepEqual(
      responses.map((r) => [r.slice(0, 15), /"url":"([^"]*)"/.exec(r)?.[1]]),
      [
        ['HTTP/1.1 200 OK', '/first'],
        ['HTTP/1.1 200 OK', '/slow/6000'],
      ],
      text,
    );
  });

  it('keeps every Set-Cookie and drops hop-by-hop response fields', async () => {
    for (const proto of [[], ['--http2-prior-knowledge']]) {
      const res = await curlDump([...proto, '-H', HOST, `http://${outbound}/cookies`]);
      assert.equal(res.stdout, 'ok');
      assert.deepEqual(fieldValues(res.dump, 'set-cookie'), ['a=1; Path=/', 'b=2; Path=/']);
      assert.deepEqual(fieldValues(res.dump, 'x-end-resp'), ['kept']);
      assert.deepEqual(fieldValues(res.dump, 'x-bar'), [], res.dump);
      assert.ok(!fieldValues(res.dump, 'keep-alive').includes('timeout=99'), res.dump);
    }
  });
});

describe('h2c, HTTP_PROXY and CONNECT to the outbound proxy', () => {
  it('speaks h2c with prior knowledge end to end', async () => {
    const get = await viaOutbound(['--http2-prior-knowledge'], '/echo?h2=1');
    assert.deepEqual([get.values.http_code, get.values.http_version], ['200', '2']);
    const echo = echoOf(get.body);
    assert.equal(echo.httpVersion, '2.0', 'the app is reached over h2 too');
    assert.deepEqual([echo.headers[':authority'], echo.headers[':path']], [AUTHORITY, '/echo?h2=1']);

    const post = await viaOutbound(['--http2-prior-knowledge', '--data-binary', `@${bodyFile}`], '/up');
    assert.deepEqual([echoOf(post.body).bodyBytes, echoOf(post.body).bodySha256], [256 * 1024, bodySha]);
  });

  it('works as an HTTP proxy (absolute-form), by -x and by http_proxy', async () => {
    const byFlag = await curl([
      ...MAX_TIME,
      ...curlWriteOut(W),
      '-x',
      `http://${outbound}`,
      `http://${AUTHORITY}/abs?x=1`,
    ]);
    const byEnv = await curl([...MAX_TIME, ...curlWriteOut(W), `http://${AUTHORITY}/abs?x=2`], {
      env: { http_proxy: `http://${outbound}` },
    });
    for (const [res, query] of [
      [byFlag, 'x=1'],
      [byEnv, 'x=2'],
    ] as const) {
      assert.equal(res.code, 0, res.stderr);
      const { body, values } = parseCurlWrite(res.stdout, W);
      assert.equal(values.http_code, '200');
      const echo = echoOf(body);
      assert.equal(echo.url, `/abs?${query}`, 'the app gets origin-form');
      assert.equal(echo.headers.host, AUTHORITY);
      assert.equal(echo.headers['proxy-connection'], undefined);
    }
  });

  it('tunnels HTTP/1.1 and h2c through CONNECT', async () => {
    for (const [proto, version] of [
      [[], '1.1'],
      [['--http2-prior-knowledge'], '2.0'],
    ] as const) {
      const res = await curl([
        ...MAX_TIME,
        ...proto,
        ...['-v', '-p', '-x', `http://${outbound}`, ...curlWriteOut(W)],
        ...['--data-binary', `@${bodyFile}`, `http://${AUTHORITY}/tunnel`],
      ]);
      assert.equal(res.code, 0, res.stderr);
      assert.match(res.stderr, /> CONNECT books:7002 HTTP\/1\.1/);
      const { body, values } = parseCurlWrite(res.stdout, W);
      assert.equal(values.http_code, '200');
      const echo = echoOf(body);
      assert.equal(echo.httpVersion, version);
      assert.deepEqual([echo.url, echo.bodySha256], ['/tunnel', bodySha]);
    }
  });
});
