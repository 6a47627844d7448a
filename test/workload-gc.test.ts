/**
 * Garbage collection of stale Workloads (issue 3): a real control plane (in this process, real
 * sockets) deletes a Workload whose proxy admin listener has failed its liveness probes for longer
 * than WEFT_CONTROL_WORKLOAD_GC_AFTER_MS, logs it and counts it in /metrics; a Workload whose
 * admin listener comes back before that is kept. The admin listeners are plain HTTP servers
 * answering GET /live, which is all the probe asks of a proxy.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { type DestinationClient, destinationApi, type Update } from '../proto/destination.js';
import type { RunningControlPlane } from '../src/control/control-plane.js';
import { newLogger } from '../src/lib/log.js';
import { startTestControlPlane } from './support/control-plane.js';
import { eventually } from './support/eventually.js';
import { sampleSum } from './support/prom-text.js';

/** Short enough for a test, long enough that a listener restarted at once comes back well before it. */
const GC_AFTER_MS = 2000;

let dir: string;
let cp: RunningControlPlane;
let destination: DestinationClient;
const logs: Record<string, unknown>[] = [];
const servers = new Set<http.Server>();

/** A stand-in for a proxy's admin listener on `port` (0: any). */
function adminListener(port = 0): Promise<{ server: http.Server; port: number }> {
  const server = http.createServer((req, res) => {
    res.statusCode = req.url === '/live' ? 200 : 404;
    res.end();
  });
  servers.add(server);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () =>
      resolve({ server, port: (server.address() as net.AddressInfo).port }),
    );
  });
}

function stop(server: http.Server): Promise<void> {
  servers.delete(server);
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

async function metric(name: string, labels: Record<string, string> = {}): Promise<number> {
  const [host, port] = cp.addresses.api.split(':');
  const text = await new Promise<string>((resolve, reject) => {
    http
      .get({ host, port: Number(port), path: '/metrics', agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve(body));
      })
      .on('error', reject);
  });
  return sampleSum(text, name, labels);
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'weft-gc-'));
  const log = newLogger('info', { component: 'control' }, (line: string) => {
    logs.push(JSON.parse(line) as Record<string, unknown>);
  });
  cp = await startTestControlPlane({
    stateDir: dir,
    log,
    env: {
      WEFT_CONTROL_HEALTH_INTERVAL_MS: '100',
      WEFT_CONTROL_HEALTH_FAILURE_THRESHOLD: '2',
      WEFT_CONTROL_WORKLOAD_GC_AFTER_MS: String(GC_AFTER_MS),
    },
  });
  destination = new (destinationApi().Client)(cp.addresses.destination, grpc.credentials.createInsecure());
});

after(async () => {
  destination?.close();
  await Promise.all([...servers].map(stop));
  await cp?.shutdown();
  await rm(dir, { recursive: true, force: true });
});

describe('stale Workload garbage collection', () => {
  it('deletes a Workload failing its probes past the limit, keeps one that came back, logs and counts', async (t) => {
    await cp.store.apply({
      apiVersion: 'weft.io/v1alpha1',
      kind: 'Service',
      metadata: { name: 'books', namespace: 'default' },
      spec: { ports: [{ port: 7002 }] },
    });
    const dead = await adminListener();
    const back = await adminListener();
    const workload = (name: string, port: number, adminPort: number) => ({
      apiVersion: 'weft.io/v1alpha1',
      kind: 'Workload',
      metadata: { name, namespace: 'default' },
      spec: { service: 'books', address: '127.0.0.1', port, adminAddress: `127.0.0.1:${adminPort}` },
    });
    await cp.store.apply(workload('books-dead', 7201, dead.port));
    await cp.store.apply(workload('books-back', 7202, back.port));

    // Follow discovery, to know when each endpoint leaves and comes back.
    const addrs = new Set<string>();
    const call = destination.Get({ authority: 'books:7002', contextToken: '' });
    call.on('data', (u: Update) => {
      if (u.update === 'add') for (const a of u.add.addrs) addrs.add(a.addr);
      else if (u.update === 'remove') for (const a of u.remove.addrs) addrs.delete(a.addr);
      else addrs.clear();
    });
    call.on('error', () => {});
    try {
      await eventually(() => assert.deepEqual([...addrs].sort(), ['127.0.0.1:7201', '127.0.0.1:7202']));
      assert.equal(await metric('weft_control_workloads_probed', { health: 'healthy' }), 2);

      const downAt = performance.now();
      await Promise.all([stop(dead.server), stop(back.server)]);
      await eventually(() => assert.equal(addrs.size, 0, 'both left discovery'));
      assert.equal(await metric('weft_control_workloads_probed', { health: 'unhealthy' }), 2);
      await adminListener(back.port);
      await eventually(() => assert.ok(addrs.has('127.0.0.1:7202'), 'books-back is back in discovery'));
      const backMs = performance.now() - downAt;
      assert.ok(await cp.store.get('Workload', 'default', 'books-dead'), 'not collected before the limit');
      // Meaningful only if books-back recovered within the limit, which the assertion states.
      assert.ok(backMs < GC_AFTER_MS, `books-back took ${backMs} ms to come back`);

      await eventually(
        async () => assert.equal(await cp.store.get('Workload', 'default', 'books-dead'), undefined),
        { timeoutMs: GC_AFTER_MS + 10_000 },
      );
      const collectedMs = performance.now() - downAt;
      t.diagnostic(
        `books-back back after ${backMs.toFixed(0)} ms; books-dead collected after ${collectedMs.toFixed(0)} ms`,
      );
      assert.ok(collectedMs >= GC_AFTER_MS, `collected after ${collectedMs} ms, before the limit`);

      assert.ok(
        await cp.store.get('Workload', 'default', 'books-back'),
        'the Workload that came back is kept',
      );
      assert.ok(addrs.has('127.0.0.1:7202'));
      // Logged once the deletion has resolved in the control plane, a moment after it is visible here.
      const line = await eventually(() => {
        const l = logs.find((e) => e.msg === 'stale workload garbage-collected');
        assert.ok(l, 'the collection is logged');
        return l;
      });
      assert.equal(line.workload, 'default/books-dead');
      assert.ok(Number(line.failingForMs) >= GC_AFTER_MS);
      assert.equal(await metric('weft_control_workloads_collected_total'), 1);
      assert.equal(await metric('weft_control_workloads_known'), 1);
      assert.ok((await metric('weft_control_workload_probes_total', { result: 'failure' })) >= 4);
      assert.ok((await metric('weft_control_workload_probes_total', { result: 'success' })) >= 2);
      assert.equal(await metric('weft_control_workloads_probed', { health: 'healthy' }), 1);
    } finally {
      call.cancel();
    }
  });
});
