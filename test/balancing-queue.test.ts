/**
 * The bounded wait for an endpoint (issue 3: "a bounded queue with fail-fast"), through a real
 * outbound `weft proxy` whose static destinations file knows a service with no endpoint yet:
 * requests wait for one in arrival order, fail with 503 `no endpoints` after the fail-fast
 * deadline, and are shed at once with 503 `load shed` when the queue is full. Opaque connections
 * wait the same way.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import * as http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type HttpApp, startHttpApp, startTcpEcho, type TestServer, tcpExchange } from './support/apps.js';
import { sampleSum } from './support/prom-text.js';
import { type ProxyProcess, startProxy, writeDestinationsFile } from './support/proxy-process.js';

const AUTHORITY = 'queued:7000';

interface Answer {
  status: number;
  proxyError: string | undefined;
  body: string;
  /** performance.now() when the response ended. */
  atMs: number;
}

/** A GET through `outbound` for AUTHORITY; resolves with whatever status came back. */
function get(outbound: string): Promise<Answer> {
  const [host, port] = outbound.split(':');
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host, port: Number(port), path: `http://${AUTHORITY}/`, headers: { host: AUTHORITY }, agent: false },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            proxyError: res.headers['weft-proxy-error'] as string | undefined,
            body,
            atMs: performance.now(),
          }),
        );
        res.on('error', reject);
      },
    );
    req.setTimeout(30_000, () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end();
  });
}

describe('waiting for an endpoint', () => {
  let dir: string;
  let app: HttpApp;
  let echo: TestServer;
  const proxies: ProxyProcess[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'weft-queue-'));
    app = await startHttpApp();
    echo = await startTcpEcho();
  });
  after(async () => {
    await Promise.all(proxies.map((p) => p.stop()));
    await Promise.all([app.close(), echo.close()]);
    await rm(dir, { recursive: true, force: true });
  });

  /** A client proxy whose destinations file (returned) lists AUTHORITY with no endpoint. */
  async function clientProxy(name: string, env: Record<string, string>, args: string[] = []) {
    const path = join(dir, `${name}.yaml`);
    await writeDestinationsFile(path, [{ authority: AUTHORITY, endpoints: [] }]);
    const proxy = await startProxy({
      args: ['--destinations', path, '--inbound-listen-addr', 'none', '--log-level', 'debug', ...args],
      env,
    });
    proxies.push(proxy);
    return { proxy, path };
  }

  /** Resolves once `n` requests wait in the proxy's queue (its debug log says so). */
  const queued = (proxy: ProxyProcess, n: number) =>
    proxy.waitForLog(
      (e) => e.msg === 'waiting for an endpoint' && e.authority === AUTHORITY && e.waiting === n,
    );

  it('requests wait, then go in order to an endpoint that discovery adds within the deadline', async (t) => {
    const { proxy, path } = await clientProxy('appears', { WEFT_PROXY_FAILFAST_TIMEOUT_MS: '20000' });
    const first = get(proxy.outbound as string);
    await queued(proxy, 1);
    const second = get(proxy.outbound as string);
    await queued(proxy, 2);
    const addedAtMs = performance.now();
    await writeDestinationsFile(path, [
      { authority: AUTHORITY, endpoints: [{ address: `127.0.0.1:${app.port}`, meshed: false }] },
    ]);
    const answers = await Promise.all([first, second]);
    assert.deepEqual(
      answers.map((a) => a.status),
      [200, 200],
    );
    t.diagnostic(`answered ${Math.round(answers[1].atMs - addedAtMs)} ms after the endpoint was written`);
    assert.equal(app.requestCount(), 2);
  });

  it('after the fail-fast deadline a waiting request gets 503 no endpoints', async () => {
    const { proxy } = await clientProxy('deadline', { WEFT_PROXY_FAILFAST_TIMEOUT_MS: '400' });
    const startMs = performance.now();
    const a = await get(proxy.outbound as string);
    assert.equal(a.status, 503);
    assert.equal(a.proxyError, 'no endpoints');
    assert.ok(a.atMs - startMs >= 390, `answered after ${a.atMs - startMs} ms, before the deadline`);
    const metrics = await proxy.metrics();
    assert.equal(
      sampleSum(metrics, 'response_total', {
        authority: AUTHORITY,
        status_code: '503',
        error: 'no endpoints',
      }),
      1,
    );
  });

  it('a request that finds the queue full is shed at once with 503 load shed', async () => {
    const { proxy } = await clientProxy('overflow', {
      WEFT_PROXY_FAILFAST_TIMEOUT_MS: '3000',
      WEFT_PROXY_BALANCER_QUEUE_CAPACITY: '2',
    });
    const first = get(proxy.outbound as string);
    await queued(proxy, 1);
    const second = get(proxy.outbound as string);
    await queued(proxy, 2);
    const shed = await get(proxy.outbound as string);
    assert.equal(shed.status, 503);
    assert.equal(shed.proxyError, 'load shed');
    const waited = await Promise.all([first, second]);
    assert.deepEqual(
      waited.map((a) => [a.status, a.proxyError]),
      [
        [503, 'no endpoints'],
        [503, 'no endpoints'],
      ],
    );
    assert.ok(
      waited.every((a) => shed.atMs < a.atMs),
      'shed while the queue was full, not at the deadline',
    );
    const metrics = await proxy.metrics();
    assert.equal(
      sampleSum(metrics, 'response_total', { authority: AUTHORITY, status_code: '503', error: 'load shed' }),
      1,
    );
  });

  it('an opaque connection waits for an endpoint too', async () => {
    const { proxy, path } = await clientProxy('opaque', { WEFT_PROXY_FAILFAST_TIMEOUT_MS: '20000' }, [
      '--upstream',
      `${AUTHORITY}=0`,
    ]);
    const port = Number((proxy.upstreams[AUTHORITY] as string).split(':')[1]);
    const exchange = tcpExchange(port, { send: 'hello', expectBytes: 5, timeoutMs: 20_000 });
    await queued(proxy, 1);
    await writeDestinationsFile(path, [
      {
        authority: AUTHORITY,
        opaque: true,
        endpoints: [{ address: `127.0.0.1:${echo.port}`, meshed: false }],
      },
    ]);
    assert.equal((await exchange).toString(), 'hello');
  });
});
