/**
 * Load balancing through a real outbound proxy (DESIGN.md §5): a destinations file lists three
 * plain HTTP apps; a keep-alive client sends GETs with a few in flight; each app counts what it
 * got. P2C over peak-EWMA starves an endpoint 10x slower than the others; a killed endpoint costs
 * no failed request (a refused connection is sent to another endpoint, and puts the killed one in
 * the penalty box at once), and a restarted one gets traffic back after its probe.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import * as http from 'node:http';
import type * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { closeServer, type HttpApp, startHttpApp } from './support/apps.js';
import { eventually } from './support/eventually.js';
import { sampleSum } from './support/prom-text.js';
import { type ProxyProcess, startProxy, writeDestinationsFile } from './support/proxy-process.js';

const AUTHORITY = 'lb:7000';

/** An app answering 200 after `delayMs`. */
function delayed(delayMs: number) {
  return startHttpApp((_req, res) => {
    const timer = setTimeout(() => res.writeHead(200, { 'content-length': '2' }).end('ok'), delayMs);
    res.on('close', () => clearTimeout(timer));
  });
}

/** A client of the outbound proxy: GET / with Host = the authority, on keep-alive connections. */
class Client {
  readonly #agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  constructor(readonly outbound: string) {}

  get(): Promise<number> {
    const [host, port] = this.outbound.split(':');
    return new Promise((resolve, reject) => {
      const req = http.get({
        host,
        port: Number(port),
        path: '/',
        headers: { host: AUTHORITY },
        agent: this.#agent,
      });
      req.on('response', (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
    });
  }

  /** Sends `total` GETs, `concurrency` at a time; returns the status of each. */
  async run(total: number, concurrency: number): Promise<number[]> {
    const statuses: number[] = [];
    let next = 0;
    const worker = async () => {
      while (next < total) {
        next++;
        statuses.push(await this.get());
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    return statuses;
  }

  close(): void {
    this.#agent.destroy();
  }
}

async function startOutbound(destinations: string, ports: number[]): Promise<ProxyProcess> {
  await writeDestinationsFile(destinations, [
    {
      authority: AUTHORITY,
      endpoints: ports.map((port) => ({ address: `127.0.0.1:${port}`, meshed: false, weight: 1 })),
    },
  ]);
  return startProxy({ args: ['--destinations', destinations, '--inbound-listen-addr', 'none'] });
}

describe('balancing over three endpoints', () => {
  let dir: string;
  const apps: HttpApp[] = [];
  const proxies: ProxyProcess[] = [];
  const clients: Client[] = [];
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'weft-balancing-'));
  });
  after(async () => {
    for (const c of clients) c.close();
    await Promise.all(proxies.map((p) => p.stop()));
    await Promise.all(apps.map((a) => a.close()));
    await rm(dir, { recursive: true, force: true });
  });

  // 5 ms vs 50 ms rather than 2 vs 20: the apps share this process's event loop, whose stalls
  // (5-15 ms) dominate a 2 ms latency, and peak-EWMA remembers each stall for ~10 s. At 2/20 ms
  // the slow endpoint got 4-8% (pinned at one request in flight); at 5/50 ms 0-4%.
  it('an endpoint 10x slower than the others gets under 10% of 600 requests', async () => {
    const [fastA, fastB, slow] = await Promise.all([delayed(5), delayed(5), delayed(50)]);
    apps.push(fastA, fastB, slow);
    const proxy = await startOutbound(join(dir, 'slow.yaml'), [fastA.port, fastB.port, slow.port]);
    proxies.push(proxy);
    const client = new Client(proxy.outbound!);
    clients.push(client);
    const statuses = await client.run(600, 4);
    assert.deepEqual(new Set(statuses), new Set([200]));
    const counts = [fastA, fastB, slow].map((a) => a.requestCount());
    assert.equal(counts[0] + counts[1] + counts[2], 600);
    assert.ok(counts[2] < 60, `fast, fast, slow got ${counts.join(', ')}`);
    console.log(`fast, fast, slow endpoints got ${counts.join(', ')} requests`);
  });

  it('a killed endpoint costs no failed request, and gets traffic again once restarted', async () => {
    const [a, b, doomed] = await Promise.all([delayed(2), delayed(2), delayed(2)]);
    apps.push(a, b);
    const proxy = await startOutbound(join(dir, 'killed.yaml'), [a.port, b.port, doomed.port]);
    proxies.push(proxy);
    const client = new Client(proxy.outbound!);
    clients.push(client);
    assert.deepEqual(new Set(await client.run(150, 4)), new Set([200]));
    assert.ok(doomed.requestCount() > 0, 'the third endpoint served before it died');

    // Gone: its connections are cut and its port refuses connections.
    await doomed.close();
    const killedAt = performance.now();
    const statuses = await client.run(400, 4);
    const killedMs = performance.now() - killedAt;
    const failed = statuses.filter((s) => s !== 200);
    // Each request that met the refused port (the first, then one probe per backoff) was sent
    // again to a live endpoint.
    assert.deepEqual(failed, [], `${failed.length} of 400 failed in ${Math.round(killedMs)} ms`);
    const retried = sampleSum(await proxy.metrics(), 'retry_total', {
      authority: AUTHORITY,
      reason: 'connect',
    });
    assert.ok(retried >= 1, 'the request that met the refused port was sent again');
    console.log(
      `killed endpoint: ${failed.length} of 400 requests failed in ${Math.round(killedMs)} ms, ${retried} retried`,
    );

    // Back on the same port: its probe succeeds after the backoff, and it serves again.
    const reborn = await listenOn(doomed.port, 2);
    const restartedAt = performance.now();
    try {
      let sentAfterRestart = 0;
      await eventually(
        async () => {
          const more = await client.run(100, 4);
          sentAfterRestart += more.length;
          assert.deepEqual(new Set(more), new Set([200]));
          assert.ok(reborn.count() >= 10, `the restarted endpoint got ${reborn.count()} requests`);
        },
        { timeoutMs: 20_000, intervalMs: 0 },
      );
      console.log(
        `restarted endpoint: ${reborn.count()} of ${sentAfterRestart} requests, back after ${Math.round(performance.now() - restartedAt)} ms`,
      );
    } finally {
      await reborn.close();
    }
  });
});

/**
 * A plain HTTP app on a given port (startHttpApp always takes a new one): answers 200 after
 * `delayMs` and counts requests.
 */
async function listenOn(port: number, delayMs: number): Promise<{ count(): number; close(): Promise<void> }> {
  let requests = 0;
  const server = http.createServer((_req, res) => {
    requests++;
    setTimeout(() => res.writeHead(200, { 'content-length': '2' }).end('ok'), delayMs);
  });
  const sockets = new Set<net.Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return { count: () => requests, close: () => closeServer(server, sockets) };
}
