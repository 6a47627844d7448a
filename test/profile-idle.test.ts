/**
 * The client proxy's subscriptions to a real control plane (started in this process, so the test
 * writes to its store and reads its stream count):
 *
 * 1. GetProfile: a Service whose port is declared `protocol: opaque` makes the proxy skip protocol
 *    detection for it, known from the profile even before the Service has any endpoint (the
 *    endpoints' protocol hints cannot say so then). A server-first app through a CONNECT tunnel
 *    gets its banner without waiting for a (deliberately long) detection timeout.
 * 2. Idle destinations: with WEFT_PROXY_DESTINATION_IDLE_MS short, the proxy closes an
 *    authority's Get and GetProfile streams once it goes unused (the control plane's stream count
 *    drops to zero), never while requests keep using it, and a later request subscribes again
 *    and sees endpoints registered meanwhile.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import * as http from 'node:http';
import type * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { RunningControlPlane } from '../src/control/control-plane.js';
import { newLogger } from '../src/lib/log.js';
import {
  echoHandler,
  type HttpApp,
  startBannerServer,
  startHttpApp,
  type TestServer,
} from './support/apps.js';
import { startTestControlPlane } from './support/control-plane.js';
import { eventually } from './support/eventually.js';
import { sampleSum } from './support/prom-text.js';
import { type ProxyProcess, startProxy } from './support/proxy-process.js';

const log = newLogger('warn', { component: 'control' }, () => {});
const BANNER = 'HELLO server-first\r\n';
/** Far above the banner wait below: a tunnel that went through detection could not pass. */
const DETECT_TIMEOUT_MS = 20_000;
const BANNER_WAIT_MS = 8000;

let dir: string;
let control: RunningControlPlane;
const proxies: ProxyProcess[] = [];
const servers: (TestServer | HttpApp)[] = [];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'weft-profile-idle-'));
  control = await startTestControlPlane({ stateDir: dir, log });
});
after(async () => {
  await Promise.all(proxies.map((p) => p.stop()));
  await control?.shutdown();
  await Promise.all(servers.map((s) => s.close()));
  await rm(dir, { recursive: true, force: true });
});

/** An app behind its own inbound proxy, as `weft run` starts one. */
async function replica(app: TestServer | HttpApp): Promise<ProxyProcess> {
  servers.push(app);
  const p = await startProxy({ args: ['--app-port', String(app.port), '--outbound-listen-addr', 'none'] });
  proxies.push(p);
  return p;
}

/** The Workload `weft run` would register for the replica behind `p`. */
function workload(name: string, service: string, p: ProxyProcess) {
  const [host, port] = (p.inbound as string).split(':');
  return {
    apiVersion: 'weft.io/v1alpha1',
    kind: 'Workload',
    metadata: { name },
    spec: { service, address: host, port: Number(port), adminAddress: p.admin },
  };
}

/** A client proxy discovering through the control plane. */
async function clientProxy(env: Record<string, string> = {}): Promise<ProxyProcess> {
  const p = await startProxy({
    args: [
      '--inbound-listen-addr',
      'none',
      '--destination-addr',
      control.addresses.destination,
      '--log-level',
      'debug',
    ],
    env,
  });
  proxies.push(p);
  return p;
}

/** A socket tunnelled through the proxy's CONNECT to `authority`. */
function connectTunnel(proxy: string, authority: string): Promise<net.Socket> {
  const [host, port] = proxy.split(':');
  return new Promise((resolve, reject) => {
    const req = http.request({
      host,
      port: Number(port),
      method: 'CONNECT',
      path: authority,
      timeout: 10_000,
    });
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

/** The first `n` bytes from `socket`; rejects after `timeoutMs`. */
function firstBytes(socket: net.Socket, n: number, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let got = 0;
    const timer = setTimeout(
      () => reject(new Error(`no ${n} bytes within ${timeoutMs} ms (got ${got})`)),
      timeoutMs,
    );
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      got += chunk.length;
      if (got >= n) {
        clearTimeout(timer);
        resolve(Buffer.concat(chunks));
      }
    });
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** GET / of `authority` through `outbound`; resolves with the status. */
function get(outbound: string, authority: string): Promise<number> {
  const [host, port] = outbound.split(':');
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host, port: Number(port), path: `http://${authority}/`, headers: { host: authority }, agent: false },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.setTimeout(15_000, () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end();
  });
}

describe('GetProfile: opaque ports', () => {
  it('a Service port declared opaque skips detection, even before the Service has endpoints', async (t) => {
    const AUTHORITY = 'smtp:7025';
    await control.store.apply({
      apiVersion: 'weft.io/v1alpha1',
      kind: 'Service',
      metadata: { name: 'smtp' },
      spec: { ports: [{ port: 7025, protocol: 'opaque' }] },
    });
    const client = await clientProxy({
      WEFT_PROXY_DETECT_TIMEOUT_MS: String(DETECT_TIMEOUT_MS),
      WEFT_PROXY_FAILFAST_TIMEOUT_MS: '20000',
    });
    const tunnel = await connectTunnel(client.outbound as string, AUTHORITY);
    try {
      // Straight to the wait for an endpoint: no detection in between.
      await client.waitForLog((e) => e.msg === 'waiting for an endpoint' && e.authority === AUTHORITY, 5000);
      const server = await replica(await startBannerServer(BANNER));
      const registeredAt = performance.now();
      await control.store.apply(workload('smtp-0', 'smtp', server));
      const banner = await firstBytes(tunnel, BANNER.length, BANNER_WAIT_MS);
      t.diagnostic(
        `banner ${(performance.now() - registeredAt).toFixed(0)} ms after the Workload was stored`,
      );
      assert.equal(banner.toString(), BANNER);
      tunnel.write('ping');
      assert.equal((await firstBytes(tunnel, 4, 5000)).toString(), 'ping', 'then echoes');
    } finally {
      tunnel.destroy();
    }
    const metrics = await client.metrics();
    assert.equal(
      sampleSum(metrics, 'protocol_detect_total', { direction: 'outbound', result: 'skipped' }),
      1,
    );
    assert.ok(
      client.logEntries((e) => e.msg === 'profile updated' && e.authority === AUTHORITY && e.opaque === true)
        .length > 0,
      'the opaque mark came from the profile',
    );
    await client.stop(); // its streams would count in the next test
  });
});

describe('idle destinations', () => {
  const AUTHORITY = 'books:7002';
  const IDLE_MS = 1000;

  it('closes an unused authority’s streams, keeps a used one’s, and re-subscribes on the next request', async (t) => {
    await control.store.apply({
      apiVersion: 'weft.io/v1alpha1',
      kind: 'Service',
      metadata: { name: 'books' },
      spec: { ports: [{ port: 7002 }] },
    });
    const a = await startHttpApp(echoHandler);
    await control.store.apply(workload('books-a', 'books', await replica(a)));
    const client = await clientProxy({ WEFT_PROXY_DESTINATION_IDLE_MS: String(IDLE_MS) });
    const streams = () => control.destination.stats().streams;
    await eventually(async () => assert.equal(await get(client.outbound as string, AUTHORITY), 200), {
      timeoutMs: 10_000,
    });
    assert.equal(streams(), 2, 'one Get and one GetProfile stream');

    // In use (a request every 100 ms for 3 idle periods): the streams stay.
    const seen = new Set<number>();
    for (const end = performance.now() + 3 * IDLE_MS; performance.now() < end; ) {
      assert.equal(await get(client.outbound as string, AUTHORITY), 200);
      seen.add(streams());
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.deepEqual([...seen], [2], 'the streams stayed open while the authority was used');

    // Unused: closed after the idle time.
    const lastUseAt = performance.now();
    await eventually(() => assert.equal(streams(), 0), { timeoutMs: 10_000, intervalMs: 20 });
    t.diagnostic(`streams closed ${(performance.now() - lastUseAt).toFixed(0)} ms after the last request`);
    assert.equal(
      client.logEntries((e) => e.msg === 'destination idle; streams closed' && e.authority === AUTHORITY)
        .length,
      1,
    );

    // A replica registered while nobody watched is seen by the next requests.
    const b = await startHttpApp(echoHandler);
    await control.store.apply(workload('books-b', 'books', await replica(b)));
    await eventually(
      async () => {
        assert.equal(await get(client.outbound as string, AUTHORITY), 200);
        assert.ok(b.requestCount() > 0, 'books-b reached');
      },
      { timeoutMs: 10_000, intervalMs: 10 },
    );
    assert.equal(streams(), 2, 'subscribed again');
  });
});
