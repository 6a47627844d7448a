/**
 * 1 GiB bodies through two proxies (client → outbound → mesh hop → inbound → app;
 * HTTP/1.1 between the proxies by default, HTTP/2 in the -mesh-h2 run), streamed
 * with backpressure end to end: the bytes arrive intact (sha256 checked on the far side) and
 * neither proxy's resident memory grows with the body (VmRSS sampled every 100 ms stays under
 * 150 MB). Peak RSS and throughput are printed as test diagnostics.
 */
import assert from 'node:assert/strict';
import { createHash, type Hash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as http from 'node:http';
import * as http2 from 'node:http2';
import { Readable } from 'node:stream';
import { after, before, describe, it, type TestContext } from 'node:test';
import {
  bytesPatternSha256,
  type EchoBody,
  echoHandler,
  type HttpApp,
  startHttpApp,
} from './support/apps.js';
import { eventually } from './support/eventually.js';
import { sampleSum } from './support/prom-text.js';
import { type MeshPair, startMeshPair } from './support/proxy-process.js';

const GIB = 1024 * 1024 * 1024;
const AUTHORITY = 'bulk.test:7000';
/** The bound on each proxy's resident memory while 1 GiB goes through it. */
const MAX_RSS_BYTES = 150 * 1000 * 1000;
const RSS_SAMPLE_MS = 100;
/** Each transfer fails after this long instead of hanging the suite. */
const TRANSFER_DEADLINE_MS = 120_000;
const TEST_TIMEOUT_MS = TRANSFER_DEADLINE_MS + 30_000;
const CHUNK_BYTES = 64 * 1024;
/** How long a reader stops at each stall offset: an observation window, not a wait. */
const STALL_MS = 1000;
/** Where readers stall: a proxy that kept reading instead of pushing back would take in hundreds of MB. */
const STALL_OFFSETS = [GIB / 4, GIB / 2, (3 * GIB) / 4];

describe('1 GiB through outbound → inbound', () => {
  let app: HttpApp;
  let mesh: MeshPair;
  let expectedDownloadSha: string;
  /** Responses the app saw cut before it finished them (the client's abort reached it). */
  let appAborts = 0;

  before(async () => {
    app = await startHttpApp((req, res) => {
      // writableEnded: the app called end() (on h2 compat objects writableFinished is true by 'close').
      res.once('close', () => !res.writableEnded && appAborts++);
      echoHandler(req, res);
    });
    mesh = await startMeshPair({ authority: AUTHORITY, appPort: app.port });
    expectedDownloadSha = bytesPatternSha256(GIB);
  });
  after(async () => {
    await mesh?.cleanup();
    await app?.close();
  });

  it('uploads 1 GiB from an HTTP/1.1 client with bounded proxy memory', {
    timeout: TEST_TIMEOUT_MS,
  }, async (t) => {
    const sent = createHash('sha256');
    const run = () => h1Upload(mesh.outbound.outbound!, GIB, sent);
    const { result: echo, report } = await measured(t, mesh, 'HTTP/1.1 upload', GIB, run);
    assert.equal(echo.bodyBytes, GIB);
    assert.equal(echo.bodySha256, sent.digest('hex'));
    assert.equal(echo.method, 'POST');
    assertRssBounded(report);
  });

  it('downloads 1 GiB to an HTTP/1.1 client with bounded proxy memory', {
    timeout: TEST_TIMEOUT_MS,
  }, async (t) => {
    const run = () => h1Download(mesh.outbound.outbound!, GIB);
    const { result, report } = await measured(t, mesh, 'HTTP/1.1 download', GIB, run);
    assert.equal(result.status, 200);
    assert.equal(result.bytes, GIB);
    assert.equal(result.sha256, expectedDownloadSha);
    assertRssBounded(report);
  });

  it('holds a 1 GiB download back while the client stops reading, with bounded proxy memory', {
    timeout: TEST_TIMEOUT_MS,
  }, async (t) => {
    const run = () => h1Download(mesh.outbound.outbound!, GIB, STALL_OFFSETS);
    const { result, report } = await measured(t, mesh, 'HTTP/1.1 download with stalls', GIB, run);
    assert.equal(result.bytes, GIB);
    assert.equal(result.sha256, expectedDownloadSha);
    assertRssBounded(report);
  });

  it('holds a 1 GiB upload back while the app stops reading, with bounded proxy memory', {
    timeout: TEST_TIMEOUT_MS,
  }, async (t) => {
    const slowApp = await startHttpApp(stallingUploadHandler);
    const slowMesh = await startMeshPair({ authority: AUTHORITY, appPort: slowApp.port }).catch(
      async (err) => {
        await slowApp.close();
        throw err;
      },
    );
    try {
      const sent = createHash('sha256');
      const run = () => h1Upload(slowMesh.outbound.outbound!, GIB, sent);
      const { result: echo, report } = await measured(
        t,
        slowMesh,
        'HTTP/1.1 upload to a stalling app',
        GIB,
        run,
      );
      assert.equal(echo.bodyBytes, GIB);
      assert.equal(echo.bodySha256, sent.digest('hex'));
      assertRssBounded(report);
    } finally {
      await slowMesh.cleanup();
      await slowApp.close();
    }
  });

  it('a client that gives up, before the response or mid-download, aborts the app through both proxies', {
    timeout: 60_000,
  }, async () => {
    const outbound = mesh.outbound.outbound!;
    const session = http2.connect(`http://${outbound}`, { settings: { initialWindowSize: 1 << 20 } });
    session.on('error', () => {});
    let requests = 0;
    const atApp: GiveUpWhen = () => eventually(() => assert.equal(app.requestCount(), requests + 1));
    const midBody: GiveUpWhen = async (response) => received(await response, GIVE_UP_AFTER_BYTES);
    const cases: [string, () => Promise<void>][] = [
      ['HTTP/1.1 client closing before the response', () => h1GiveUp(outbound, '/slow/60000', atApp)],
      ['HTTP/1.1 client closing mid-download', () => h1GiveUp(outbound, `/bytes/${GIB}`, midBody)],
      ['h2c client resetting before the response', () => h2GiveUp(session, '/slow/60000', atApp)],
      ['h2c client resetting mid-download', () => h2GiveUp(session, `/bytes/${GIB}`, midBody)],
    ];
    const counted = async (proxy: typeof mesh.outbound, error: string) =>
      sampleSum(await proxy.metrics(), 'response_total', { error });
    const cancelledBefore = await counted(mesh.outbound, 'client cancelled');
    const peerFailedBefore = await counted(mesh.outbound, 'peer failed');
    try {
      for (const [label, giveUp] of cases) {
        const aborts = appAborts;
        requests = app.requestCount();
        await giveUp();
        await eventually(() => assert.equal(appAborts, aborts + 1, `the app saw the abort: ${label}`));
      }
    } finally {
      session.destroy();
    }
    // Each is counted as the client's cancellation, not as a failure of the next hop nor as a
    // delivered response: before the response with status 499, mid-download with the status sent.
    await eventually(async () =>
      assert.equal(await counted(mesh.outbound, 'client cancelled'), cancelledBefore + cases.length),
    );
    assert.equal(await counted(mesh.outbound, 'peer failed'), peerFailedBefore);
  });

  it('uploads 1 GiB from an h2c client with bounded proxy memory', {
    timeout: TEST_TIMEOUT_MS,
  }, async (t) => {
    const sent = createHash('sha256');
    const run = () => h2Upload(mesh.outbound.outbound!, GIB, sent);
    const { result: echo, report } = await measured(t, mesh, 'h2c upload', GIB, run);
    assert.equal(echo.bodyBytes, GIB);
    assert.equal(echo.bodySha256, sent.digest('hex'));
    assertRssBounded(report);
  });

  it('downloads 1 GiB to an h2c client with bounded proxy memory', {
    timeout: TEST_TIMEOUT_MS,
  }, async (t) => {
    const run = () => h2Download(mesh.outbound.outbound!, GIB);
    const { result, report } = await measured(t, mesh, 'h2c download', GIB, run);
    assert.equal(result.status, 200);
    assert.equal(result.bytes, GIB);
    assert.equal(result.sha256, expectedDownloadSha);
    assertRssBounded(report);
  });
});

interface RssReport {
  /** Peak VmRSS in bytes per proxy role, and how many samples were taken. */
  peaks: Record<string, number>;
  samples: number;
}

/** Runs `transfer` while sampling both proxies' RSS; prints peak RSS and throughput. */
async function measured<T>(
  t: TestContext,
  mesh: MeshPair,
  label: string,
  bytes: number,
  transfer: () => Promise<T>,
): Promise<{ result: T; report: RssReport }> {
  const sampler = sampleRss({ outbound: mesh.outbound.pid, inbound: mesh.inbound.pid });
  const startMs = performance.now();
  let result: T;
  try {
    result = await transfer();
  } finally {
    sampler.stop();
  }
  const seconds = (performance.now() - startMs) / 1000;
  const report = sampler.report();
  const mb = (n: number) => (n / 1e6).toFixed(1);
  t.diagnostic(
    `${label}: ${(bytes / 2 ** 20 / seconds).toFixed(1)} MiB/s (${seconds.toFixed(1)} s); peak RSS ` +
      `outbound ${mb(report.peaks.outbound)} MB, inbound ${mb(report.peaks.inbound)} MB ` +
      `(${report.samples} samples every ${RSS_SAMPLE_MS} ms)`,
  );
  return { result, report };
}

function assertRssBounded(report: RssReport): void {
  assert.ok(report.samples >= 10, `too few RSS samples (${report.samples}) to say anything`);
  for (const [role, peak] of Object.entries(report.peaks)) {
    assert.ok(peak < MAX_RSS_BYTES, `${role} proxy peak RSS ${peak} bytes >= ${MAX_RSS_BYTES}`);
  }
}

/** Reads VmRSS of each pid from /proc every RSS_SAMPLE_MS until `stop()`; keeps the maximum. */
function sampleRss(pids: Record<string, number>) {
  const peaks: Record<string, number> = Object.fromEntries(Object.keys(pids).map((k) => [k, 0]));
  let samples = 0;
  const sample = () => {
    samples++;
    for (const [role, pid] of Object.entries(pids)) {
      const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      assert.ok(m, `no VmRSS for ${role} pid ${pid}`);
      peaks[role] = Math.max(peaks[role], Number(m[1]) * 1024);
    }
  };
  sample();
  const timer = setInterval(sample, RSS_SAMPLE_MS);
  return {
    stop() {
      clearInterval(timer);
      sample();
    },
    report: (): RssReport => ({ peaks: { ...peaks }, samples }),
  };
}

/**
 * `total` bytes in 64 KiB chunks that differ from each other (windows into a random buffer at a
 * moving offset), hashed into `hash` as they are produced. A generator: the consumer's
 * backpressure decides when the next chunk is made, so nothing is buffered whole.
 */
function* uploadChunks(total: number, hash: Hash): Generator<Buffer> {
  const base = randomBytes(CHUNK_BYTES + 251);
  for (let sent = 0, i = 0; sent < total; i++) {
    const n = Math.min(CHUNK_BYTES, total - sent);
    const chunk = base.subarray(i % 251, (i % 251) + n);
    hash.update(chunk);
    sent += n;
    yield chunk;
  }
}

/** POSTs `total` generated bytes over HTTP/1.1 (fresh connection) and returns the app's echo. */
function h1Upload(outbound: string, total: number, hash: Hash): Promise<EchoBody> {
  const [host, port] = splitAddr(outbound);
  return new Promise<EchoBody>((resolve, reject) => {
    const req = http.request({
      host,
      port,
      method: 'POST',
      path: '/upload',
      headers: { host: AUTHORITY, 'content-type': 'application/octet-stream', 'content-length': total },
      agent: false,
      signal: AbortSignal.timeout(TRANSFER_DEADLINE_MS),
    });
    req.once('error', reject);
    req.once('response', (res) => {
      readJson(res).then((body) => {
        if (res.statusCode !== 200)
          reject(new Error(`upload answered ${res.statusCode}: ${JSON.stringify(body)}`));
        else resolve(body as EchoBody);
      }, reject);
    });
    const body = Readable.from(uploadChunks(total, hash), { objectMode: false });
    body.once('error', (err) => req.destroy(err));
    body.pipe(req);
  });
}

/** Pauses `body` for STALL_MS each time the byte count passes the next offset of `stalls` (consumed). */
function stallAt(body: Readable, bytes: number, stalls: number[]): void {
  if (stalls.length === 0 || bytes < stalls[0]) return;
  stalls.shift();
  body.pause();
  setTimeout(() => body.resume(), STALL_MS);
}

/** An app handler that hashes the request body like the echo app, stalling at STALL_OFFSETS. */
function stallingUploadHandler(req: http.IncomingMessage, res: http.ServerResponse): void {
  const hash = createHash('sha256');
  const stalls = [...STALL_OFFSETS];
  let bodyBytes = 0;
  req.on('data', (chunk: Buffer) => {
    hash.update(chunk);
    bodyBytes += chunk.length;
    stallAt(req, bodyBytes, stalls);
  });
  req.once('end', () => {
    const body = JSON.stringify({ method: req.method, bodyBytes, bodySha256: hash.digest('hex') });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
}

/**
 * GETs `/bytes/<total>` over HTTP/1.1 and hashes the body as it streams in. At each offset in
 * `stallOffsets` the client stops reading for STALL_MS, so backpressure must reach back to the app.
 */
function h1Download(
  outbound: string,
  total: number,
  stallOffsets: number[] = [],
): Promise<{ status: number; bytes: number; sha256: string }> {
  const [host, port] = splitAddr(outbound);
  return new Promise((resolve, reject) => {
    const req = http.get({
      host,
      port,
      path: `/bytes/${total}`,
      headers: { host: AUTHORITY },
      agent: false,
      signal: AbortSignal.timeout(TRANSFER_DEADLINE_MS),
    });
    req.once('error', reject);
    req.once('response', (res) => {
      const hash = createHash('sha256');
      let bytes = 0;
      const stalls = [...stallOffsets];
      res.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        bytes += chunk.length;
        stallAt(res, bytes, stalls);
      });
      res.once('error', reject);
      res.once('end', () => resolve({ status: res.statusCode ?? 0, bytes, sha256: hash.digest('hex') }));
    });
  });
}

/** POSTs `total` generated bytes on an h2c (prior knowledge) stream and returns the app's echo. */
function h2Upload(outbound: string, total: number, hash: Hash): Promise<EchoBody> {
  const session = http2.connect(`http://${outbound}`);
  return new Promise<EchoBody>((resolve, reject) => {
    const deadline = setTimeout(
      () => session.destroy(new Error(`h2c upload not done within ${TRANSFER_DEADLINE_MS} ms`)),
      TRANSFER_DEADLINE_MS,
    );
    session.on('error', reject);
    session.once('close', () => {
      clearTimeout(deadline);
      reject(new Error('h2c session closed before the response'));
    });
    const stream = session.request({
      ':method': 'POST',
      ':path': '/upload',
      ':authority': AUTHORITY,
      'content-type': 'application/octet-stream',
      'content-length': String(total),
    });
    stream.on('error', reject);
    stream.once('response', (headers) => {
      readJson(stream).then((body) => {
        const status = Number(headers[':status']);
        if (status !== 200) reject(new Error(`h2c upload answered ${status}: ${JSON.stringify(body)}`));
        else resolve(body as EchoBody);
      }, reject);
    });
    const body = Readable.from(uploadChunks(total, hash), { objectMode: false });
    body.once('error', (err) => stream.destroy(err));
    body.pipe(stream);
  }).finally(() => session.close());
}

/** GETs `/bytes/<total>` on an h2c stream and hashes the body as it streams in. */
function h2Download(
  outbound: string,
  total: number,
): Promise<{ status: number; bytes: number; sha256: string }> {
  // A 1 MiB stream window, as a bulk HTTP/2 client would ask for (the default is 64 KiB).
  const session = http2.connect(`http://${outbound}`, { settings: { initialWindowSize: 1 << 20 } });
  return new Promise<{ status: number; bytes: number; sha256: string }>((resolve, reject) => {
    const deadline = setTimeout(
      () => session.destroy(new Error(`h2c download not done within ${TRANSFER_DEADLINE_MS} ms`)),
      TRANSFER_DEADLINE_MS,
    );
    session.on('error', reject);
    session.once('close', () => {
      clearTimeout(deadline);
      reject(new Error('h2c session closed before the end of the body'));
    });
    const stream = session.request({ ':path': `/bytes/${total}`, ':authority': AUTHORITY });
    const hash = createHash('sha256');
    let status = 0;
    let bytes = 0;
    stream.once('response', (headers) => (status = Number(headers[':status'])));
    stream.on('data', (chunk: Buffer) => {
      hash.update(chunk);
      bytes += chunk.length;
    });
    stream.on('error', reject);
    stream.once('end', () => resolve({ status, bytes, sha256: hash.digest('hex') }));
  }).finally(() => session.close());
}

const GIVE_UP_AFTER_BYTES = 16 * 2 ** 20;

/** When a client gives up, given its response body (which may never come). */
type GiveUpWhen = (response: Promise<Readable>) => Promise<void>;

/** GETs `path` over HTTP/1.1 and closes the connection once `when` resolves. */
async function h1GiveUp(outbound: string, path: string, when: GiveUpWhen): Promise<void> {
  const [host, port] = splitAddr(outbound);
  const req = http.get({ host, port, path, headers: { host: AUTHORITY }, agent: false });
  req.on('error', () => {}); // the abort below
  await when(new Promise((resolve) => req.once('response', resolve)));
  req.destroy();
}

/** GETs `path` on an h2c stream of `session` and resets it (CANCEL) once `when` resolves. */
async function h2GiveUp(session: http2.ClientHttp2Session, path: string, when: GiveUpWhen): Promise<void> {
  const stream = session.request({ ':path': path, ':authority': AUTHORITY });
  stream.on('error', () => {});
  await when(new Promise((resolve) => stream.once('response', () => resolve(stream))));
  stream.close(http2.constants.NGHTTP2_CANCEL);
}

/** Resolves once `body` has delivered `n` bytes (it keeps flowing). */
function received(body: Readable, n: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let bytes = 0;
    body.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      if (bytes >= n) resolve();
    });
    body.once('error', reject);
  });
}

async function readJson(body: AsyncIterable<Buffer>): Promise<unknown> {
  const parts: Buffer[] = [];
  for await (const chunk of body) parts.push(chunk);
  const text = Buffer.concat(parts).toString('utf8');
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function splitAddr(addr: string): [string, number] {
  const at = addr.lastIndexOf(':');
  return [addr.slice(0, at), Number(addr.slice(at + 1))];
}
