import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { DestinationProfile, Update } from '../../../proto/destination.js';
import { newLogger } from '../../lib/log.js';
import type { Store } from '../../store/store.js';
import { openEmbeddedStore } from '../../store/store-embedded.js';
import { newWorkloadHealth } from '../health/workload-health.js';
import { type DestinationWatcher, newDestinationWatcher } from './destination-watcher.js';

const log = newLogger('error', {}, () => {});

/** A compact view of an update: `+addr`, `-addr`, `none(exists)`. */
function show(u: Update): string {
  if (u.update === 'add') return u.add.addrs.map((a) => `+${a.addr}`).join(' ');
  if (u.update === 'remove') return u.remove.addrs.map((a) => `-${a.addr}`).join(' ');
  return `none(${u.noEndpoints.exists})`;
}

const service = (name: string, ports: { port: number; protocol?: string }[] = [{ port: 80 }]) => ({
  apiVersion: 'weft.io/v1alpha1',
  kind: 'Service',
  metadata: { name },
  spec: { ports },
});
const workload = (name: string, svc: string, address: string) => ({
  apiVersion: 'weft.io/v1alpha1',
  kind: 'Workload',
  metadata: { name },
  spec: { service: svc, address },
});

/** Waits until `seen` has at least `n` entries (the store delivers watch events asynchronously). */
async function until(seen: unknown[], n: number): Promise<void> {
  const deadline = Date.now() + 5000;
  while (seen.length < n) {
    if (Date.now() > deadline)
      throw new Error(`only ${seen.length} of ${n} updates: ${JSON.stringify(seen)}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('destination watcher over the embedded store', () => {
  let dir: string;
  let store: Store;
  let watcher: DestinationWatcher;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'weft-watcher-'));
    store = await openEmbeddedStore({ stateDir: dir });
    await store.apply(service('books'));
    await store.apply(workload('books-0', 'books', '10.0.0.1'));
    watcher = newDestinationWatcher(store, log);
    await watcher.start();
  });
  after(async () => {
    watcher.close();
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('answers with the state at once, then follows every change', async () => {
    const seen: string[] = [];
    const stop = watcher.subscribeEndpoints('books.default:80', (u) => seen.push(show(u)));
    assert.deepEqual(seen, ['+10.0.0.1:80'], 'the snapshot, synchronously');
    await store.apply(workload('books-1', 'books', '10.0.0.2'));
    await until(seen, 2);
    await store.apply(workload('books-1', 'authors', '10.0.0.2')); // moved to another service
    await until(seen, 3);
    await store.delete('Workload', 'default', 'books-0');
    await until(seen, 5);
    await store.delete('Service', 'default', 'books');
    await until(seen, 6);
    assert.deepEqual(seen, [
      '+10.0.0.1:80',
      '+10.0.0.2:80',
      '-10.0.0.2:80',
      '-10.0.0.1:80',
      'none(true)',
      'none(false)',
    ]);
    stop();
    stop();
    assert.equal(watcher.stats().endpointSubscribers, 0);
    assert.equal(watcher.stats().authorities, 0);
  });

  it('keeps a subscription to an unknown authority open and tells it when the service appears', async () => {
    const seen: string[] = [];
    const profiles: DestinationProfile[] = [];
    const stop = watcher.subscribeEndpoints('db:5432', (u) => seen.push(show(u)));
    const stopProfile = watcher.subscribeProfile('db:5432', (p) => profiles.push(p));
    const stopIp = watcher.subscribeEndpoints('127.0.0.1:5432', (u) => seen.push(`ip ${show(u)}`));
    assert.deepEqual(seen, ['none(false)', 'ip none(false)']);
    await store.apply(service('db', [{ port: 5432, protocol: 'opaque' }]));
    await until(seen, 3);
    await store.apply(workload('db-0', 'db', '10.0.0.9'));
    await until(seen, 4);
    assert.deepEqual(seen, ['none(false)', 'ip none(false)', 'none(true)', '+10.0.0.9:5432']);
    await until(profiles, 2);
    assert.deepEqual(profiles.at(-1), {
      opaquePorts: [5432],
      opaque: true,
      fullyQualifiedName: 'db.default.svc.cluster.local',
      routes: [],
    });
    stop();
    stopProfile();
    stopIp();
  });
});

describe('destination watcher with workload health', () => {
  it('leaves out a Workload whose proxy stops answering /live, and adds it back when it answers again', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'weft-watcher-health-'));
    const store = await openEmbeddedStore({ stateDir: dir });
    const health = newWorkloadHealth(log, { intervalMs: 50, failureThreshold: 2 });
    const watcher = newDestinationWatcher(store, log, health);
    const admin = http.createServer((_req, res) => res.end('live\n'));
    await new Promise<void>((resolve) => admin.listen(0, '127.0.0.1', resolve));
    const port = (admin.address() as net.AddressInfo).port;
    try {
      await store.apply(service('books'));
      await store.apply(workload('books-0', 'books', '10.0.0.1')); // no adminAddress: never probed
      const probed = workload('books-1', 'books', '10.0.0.2');
      await store.apply({ ...probed, spec: { ...probed.spec, adminAddress: `127.0.0.1:${port}` } });
      await watcher.start();
      const seen: string[] = [];
      const stop = watcher.subscribeEndpoints('books:80', (u) => seen.push(show(u)));
      assert.deepEqual(seen, ['+10.0.0.1:80 +10.0.0.2:80']);
      admin.closeAllConnections();
      await new Promise<void>((resolve) => admin.close(() => resolve()));
      await until(seen, 2);
      assert.equal(seen[1], '-10.0.0.2:80');
      await new Promise<void>((resolve) => admin.listen(port, '127.0.0.1', resolve));
      await until(seen, 3);
      assert.equal(seen[2], '+10.0.0.2:80');
      stop();
    } finally {
      admin.closeAllConnections();
      admin.close();
      watcher.close();
      health.close();
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
