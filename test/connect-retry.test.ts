/**
 * A replica whose proxy stops without leaving discovery first (SIGTERM, no deregistration): its
 * endpoint stays listed while its port refuses connections. The client proxy must cost its
 * clients nothing: a request that cannot connect is sent once more to another endpoint, and the
 * unreachable one goes into the penalty box at once (regression: before, 1-3 requests got
 * `502 connect ... ECONNREFUSED`, and a plain re-pick chose the dead endpoint again because a
 * connect failure looked cheaper to peak-EWMA than a live endpoint with slow requests).
 *
 * Real processes on 127.0.0.1: two apps, each behind its own inbound `weft proxy`, and a client
 * `weft proxy` whose static destinations file lists both (so nothing ever removes the dead one).
 * Run over both mesh transports for HTTP/1 (a keep-alive pool, or one HTTP/2 session per peer).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { echoHandler, type HttpApp, startHttpApp, startTcpEcho, tcpExchange } from './support/apps.js';
import { eventually } from './support/eventually.js';
import { sampleSum } from './support/prom-text.js';
import { proxiedGet } from './support/proxied-get.js';
import { type ProxyProcess, startProxy, writeDestinationsFile } from './support/proxy-process.js';

const AUTHORITY = 'books:7002';

/** A GET of `path` through `outbound` (absolute form, as HTTP_PROXY clients send); rejects unless 200. */
function get(outbound: string, path: string): Promise<void> {
  return proxiedGet(outbound, AUTHORITY, path);
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * `workers` sequential senders (one GET in four slow, so peak-EWMA sees the live replica as slow)
 * until `stop()`, bounded by `maxMs`.
 */
function startLoad(outbound: string, maxMs: number, workers = 3) {
  const result = { ok: 0, failures: [] as string[] };
  const start = performance.now();
  let stopped = false;
  const worker = async () => {
    for (let i = 0; !stopped && performance.now() - start < maxMs; i++) {
      const path = i % 4 === 3 ? '/slow/60' : '/';
      try {
        await get(outbound, path);
        result.ok++;
      } catch (err) {
        result.failures.push(
          `${(performance.now() - start).toFixed(0)} ms ${path}: ${(err as Error).message}`,
        );
      }
      await sleep(5);
    }
  };
  const all = Promise.all(Array.from({ length: workers }, worker));
  return {
    stop: async () => {
      stopped = true;
      await all;
      return result;
    },
  };
}

for (const transport of ['http1', 'h2'] as const) {
  describe(`a replica proxy stopped without deregistering (mesh transport ${transport})`, () => {
    let dir: string;
    const apps: HttpApp[] = [];
    const proxies: ProxyProcess[] = [];

    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'weft-connect-retry-'));
    });
    after(async () => {
      await Promise.all(proxies.map((p) => p.stop()));
      await Promise.all(apps.map((a) => a.close()));
      await rm(dir, { recursive: true, force: true });
    });

    it('costs zero failed requests: connect failures are sent to the other replica, and counted', async (t) => {
      const replicas: ProxyProcess[] = [];
      for (let i = 0; i < 2; i++) {
        const app = await startHttpApp(echoHandler);
        apps.push(app);
        const p = await startProxy({
          args: ['--app-port', String(app.port), '--outbound-listen-addr', 'none'],
        });
        proxies.push(p);
        replicas.push(p);
      }
      const destinations = join(dir, 'destinations.yaml');
      await writeDestinationsFile(destinations, [
        {
          authority: AUTHORITY,
          endpoints: replicas.map((r, i) => ({
            address: r.inbound as string,
            meshed: true,
            labels: { pod: `books-${i}` },
          })),
        },
      ]);
      const client = await startProxy({
        args: [
          '--destinations',
          destinations,
          '--inbound-listen-addr',
          'none',
          '--mesh-http1-transport',
          transport,
        ],
      });
      proxies.push(client);
      const outbound = client.outbound as string;
      // Both replicas serve before the scenario starts.
      await eventually(
        async () => {
          await get(outbound, '/');
          assert.ok(
            apps.every((a) => a.requestCount() > 0),
            'both replicas reached',
          );
        },
        { timeoutMs: 10_000, intervalMs: 5 },
      );

      const load = startLoad(outbound, 15_000);
      let result: { ok: number; failures: string[] };
      let exit: Awaited<ReturnType<ProxyProcess['stop']>>;
      const doomed = replicas[0];
      try {
        await sleep(1000);
        exit = await doomed.stop('SIGTERM', 20_000);
        // Long enough for the penalty box's probes (after ~1 s, then ~2 s) to find it still dead.
        await sleep(3500);
      } finally {
        result = await load.stop();
      }
      const metrics = await client.metrics();
      const retries = sampleSum(metrics, 'retry_total', {
        direction: 'outbound',
        authority: AUTHORITY,
        protocol: 'http',
        reason: 'connect',
      });
      t.diagnostic(
        `${transport}: ${result.ok} requests, ${result.failures.length} failed, ${retries} retried after a connect failure`,
      );
      assert.deepEqual(exit, { code: 0, signal: null }, 'the replica proxy drained and exited');
      assert.deepEqual(result.failures, []);
      assert.ok(result.ok > 100, `the load ran (${result.ok} requests)`);
      assert.ok(retries >= 1, 'at least one request met the refused port and was sent again');
      assert.equal(
        sampleSum(metrics, 'response_total', { direction: 'outbound', classification: 'failure' }),
        0,
        'no failure recorded',
      );
    });
  });
}

describe('opaque connections to an endpoint whose port refuses them', () => {
  let dir: string;
  const closers: (() => Promise<unknown>)[] = [];
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'weft-connect-retry-tcp-'));
  });
  after(async () => {
    await Promise.all(closers.map((c) => c()));
    await rm(dir, { recursive: true, force: true });
  });

  it('are made to the other endpoint instead, and counted', async () => {
    const live = await startTcpEcho();
    const dead = await startTcpEcho();
    closers.push(() => live.close());
    await dead.close(); // its port now refuses connections
    const destinations = join(dir, 'destinations.yaml');
    const authority = 'echo:7009';
    await writeDestinationsFile(destinations, [
      {
        authority,
        opaque: true,
        endpoints: [live.port, dead.port].map((port) => ({ address: `127.0.0.1:${port}`, meshed: false })),
      },
    ]);
    const proxy = await startProxy({
      args: ['--destinations', destinations, '--inbound-listen-addr', 'none', '--upstream', `${authority}=0`],
    });
    closers.push(() => proxy.stop());
    const port = Number((proxy.upstreams[authority] as string).split(':')[1]);
    // Sequential connections: the first ones meet the dead port (P2C tries an unmeasured endpoint).
    for (let i = 0; i < 20; i++) {
      assert.equal((await tcpExchange(port, { send: `ping ${i}` })).toString(), `ping ${i}`);
    }
    const retried = sampleSum(await proxy.metrics(), 'retry_total', {
      authority,
      protocol: 'tcp',
      reason: 'connect',
    });
    assert.ok(retried >= 1, `retried ${retried}`);
  });
});
