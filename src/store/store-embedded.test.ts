import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { eventually } from '../../test/support/eventually.js';
import type { Store, WatchEvent } from './store.js';
import { openEmbeddedStore } from './store-embedded.js';
import { ConflictError, StoreError, ValidationError } from './store-error.js';

const service = (name: string, port = 80, namespace = 'shop') => ({
  apiVersion: 'weft.io/v1alpha1',
  kind: 'Service',
  metadata: { name, namespace },
  spec: { ports: [{ port, protocol: 'http' }] },
});

/** `TYPE name@rv` for change events, `ERROR code` for errors: easy to compare in order. */
const show = (e: WatchEvent) =>
  e.type === 'ERROR'
    ? `ERROR ${e.error.code}`
    : `${e.type} ${e.object.metadata.name}@${e.object.metadata.resourceVersion}`;

let root: string;
const open: Store[] = [];
let n = 0;

async function newStore(dir?: string, opts: { historyLimit?: number; maxQueuedEvents?: number } = {}) {
  const stateDir = dir ?? join(root, `s${n++}`);
  const store = await openEmbeddedStore({ stateDir, ...opts });
  open.push(store);
  return { store, stateDir };
}

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'weft-store-'));
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('embedded store: resources', () => {
  it('applies, gets, lists and deletes, with an increasing resourceVersion', async () => {
    const { store } = await newStore();
    const a = await store.apply(service('books'));
    const b = await store.apply(service('authors', 81));
    const c = await store.apply({ ...service('books'), metadata: { name: 'books', namespace: 'other' } });
    assert.deepEqual(
      [a, b, c].map((r) => r.metadata.resourceVersion),
      ['1', '2', '3'],
    );
    assert.ok(a.metadata.uid && a.metadata.creationTimestamp);
    assert.deepEqual(await store.get('Service', 'shop', 'books'), a);
    assert.equal(await store.get('Service', 'shop', 'nope'), undefined);
    assert.equal(await store.get('Workload', 'shop', 'books'), undefined);

    const all = await store.list('Service');
    assert.deepEqual(
      all.items.map((r) => `${r.metadata.namespace}/${r.metadata.name}`),
      ['other/books', 'shop/authors', 'shop/books'],
    );
    assert.equal(all.resourceVersion, '3');
    assert.deepEqual(
      (await store.list('Service', 'shop')).items.map((r) => r.metadata.name),
      ['authors', 'books'],
    );

    const updated = await store.apply(service('books', 8080));
    assert.equal(updated.metadata.resourceVersion, '4');
    assert.equal(updated.metadata.uid, a.metadata.uid);
    assert.equal(updated.metadata.creationTimestamp, a.metadata.creationTimestamp);
    assert.deepEqual(updated.spec, { ports: [{ port: 8080, protocol: 'http' }] });

    const deleted = await store.delete('Service', 'shop', 'books');
    assert.equal(deleted?.metadata.resourceVersion, '5');
    assert.equal(await store.get('Service', 'shop', 'books'), undefined);
    assert.equal(await store.delete('Service', 'shop', 'books'), undefined);
    assert.equal(store.stats().resourceVersion, '5');
  });

  it('treats re-applying the stored resource as no change', async () => {
    const { store } = await newStore();
    const first = await store.apply(service('books'));
    const again = await store.apply(service('books'));
    assert.deepEqual(again, first);
    assert.equal((await store.list('Service')).resourceVersion, '1');
  });

  it('rejects invalid resources and stale resourceVersions with coded errors, storing nothing', async () => {
    const { store } = await newStore();
    await assert.rejects(store.apply(service('books', 0)), (err) => {
      assert.ok(err instanceof ValidationError);
      assert.equal(err.code, 'WEFT_ERR_INVALID_RESOURCE');
      assert.deepEqual(
        err.problems.map((p) => p.path),
        ['spec.ports[0].port'],
      );
      return true;
    });
    const stored = await store.apply(service('books'));
    await store.apply(service('books', 81));
    const stale = { ...service('books', 82), metadata: { ...stored.metadata } };
    await assert.rejects(
      store.apply(stale),
      (err) => err instanceof ConflictError && err.code === 'WEFT_ERR_CONFLICT',
    );
    assert.equal((await store.list('Service')).resourceVersion, '2');
  });

  it('returns frozen resources', async () => {
    const { store } = await newStore();
    const r = await store.apply(service('books'));
    assert.throws(() => {
      (r.spec as { ports: unknown[] }).ports.push({ port: 1 });
    }, TypeError);
  });
});

describe('embedded store: durability', () => {
  it('a new store on the same directory sees everything, and continues the resourceVersion', async () => {
    const { store, stateDir } = await newStore();
    for (let i = 0; i < 20; i++) await store.apply(service(`svc-${i}`, 1000 + i));
    await store.delete('Service', 'shop', 'svc-3');
    const before = await store.list('Service');
    await store.close();

    const { store: again } = await newStore(stateDir);
    assert.deepEqual(await again.list('Service'), before);
    assert.equal((await again.apply(service('late'))).metadata.resourceVersion, '22');
  });

  it('a crash mid-write (leftover, truncated temp file) leaves the previous state readable', async () => {
    const { store, stateDir } = await newStore();
    await store.apply(service('books'));
    await store.close();
    const state = await readFile(join(stateDir, 'state.json'), 'utf8');
    // What a writer killed between creating its temp file and the rename leaves behind.
    await writeFile(join(stateDir, 'state.json.tmp-99999-x'), state.slice(0, state.length / 2));
    await writeFile(join(stateDir, 'state.json.tmp-99998-y'), '');

    const { store: again } = await newStore(stateDir);
    assert.deepEqual(
      (await again.list('Service')).items.map((r) => r.metadata.name),
      ['books'],
    );
    await again.apply(service('authors'));
    assert.deepEqual(
      (await readdir(stateDir)).filter((f) => f.includes('tmp')),
      [],
      'the next writer removes the leftovers',
    );
  });

  it('refuses a corrupt state file instead of starting empty', async () => {
    const stateDir = join(root, 'corrupt');
    const { store } = await newStore(stateDir);
    await store.apply(service('books'));
    await store.close();
    await writeFile(join(stateDir, 'state.json'), '{"format":1,"resour');
    await assert.rejects(openEmbeddedStore({ stateDir }), (err) => {
      assert.ok(err instanceof StoreError);
      assert.equal(err.code, 'WEFT_ERR_STORE_CORRUPT');
      return true;
    });
  });
});

describe('embedded store: watch', () => {
  it('delivers changes in order, asynchronously, filtered by kind and namespace', async () => {
    const { store } = await newStore();
    const seen: string[] = [];
    const shopOnly: string[] = [];
    let inCall = false;
    store.watch('Service', {}, (e) => {
      assert.equal(inCall, false, 'never called synchronously from apply');
      seen.push(show(e));
    });
    store.watch('Service', { namespace: 'shop' }, (e) => {
      shopOnly.push(show(e));
    });
    inCall = true;
    const applying = store.apply(service('books'));
    inCall = false;
    await applying;
    await store.apply(service('books', 81));
    await store.apply(service('books', 81, 'elsewhere'));
    await store.apply({
      apiVersion: 'weft.io/v1alpha1',
      kind: 'Workload',
      metadata: { name: 'w', namespace: 'shop' },
      spec: { service: 'books', address: '127.0.0.1' },
    });
    await store.delete('Service', 'shop', 'books');
    const expected = ['ADDED books@1', 'MODIFIED books@2', 'ADDED books@3', 'DELETED books@5'];
    await eventually(() => assert.deepEqual(seen, expected));
    await eventually(() =>
      assert.deepEqual(shopOnly, ['ADDED books@1', 'MODIFIED books@2', 'DELETED books@5']),
    );
  });

  it('replays what changed since a resourceVersion, then follows; list + watch misses nothing', async () => {
    const { store, stateDir } = await newStore();
    await store.apply(service('a'));
    const listed = await store.list('Service');
    await store.apply(service('b'));
    await store.apply(service('a', 81));
    await store.close();

    // Also across a restart: the history is part of the durable state.
    const { store: again } = await newStore(stateDir);
    const seen: string[] = [];
    const stop = again.watch('Service', { fromResourceVersion: listed.resourceVersion }, (e) => {
      seen.push(show(e));
    });
    await again.delete('Service', 'shop', 'b');
    await eventually(() => assert.deepEqual(seen, ['ADDED b@2', 'MODIFIED a@3', 'DELETED b@4']));
    stop();
    await again.apply(service('c'));
    await new Promise((r) => setImmediate(r));
    assert.equal(seen.length, 3, 'no calls after unsubscribe');
  });

  it('tells a watcher from before the bounded history to re-list', async () => {
    const { store } = await newStore(undefined, { historyLimit: 3 });
    for (let i = 0; i < 6; i++) await store.apply(service(`s${i}`));
    const seen: string[] = [];
    store.watch('Service', { fromResourceVersion: '1' }, (e) => {
      seen.push(show(e));
    });
    const replay: string[] = [];
    store.watch('Service', { fromResourceVersion: '3' }, (e) => {
      replay.push(show(e));
    });
    await eventually(() => assert.deepEqual(seen, ['ERROR WEFT_ERR_STORE_EXPIRED']));
    await eventually(() => assert.deepEqual(replay, ['ADDED s3@4', 'ADDED s4@5', 'ADDED s5@6']));
  });

  it('drops a watcher that falls behind its bounded queue, without stalling the others', async () => {
    const { store } = await newStore(undefined, { maxQueuedEvents: 5 });
    let release!: () => void;
    const stuck = new Promise<void>((r) => {
      release = r;
    });
    const slow: string[] = [];
    store.watch('Service', {}, async (e) => {
      slow.push(show(e));
      await stuck;
    });
    const fast: string[] = [];
    store.watch('Service', {}, (e) => {
      fast.push(show(e));
    });
    for (let i = 0; i < 10; i++) await store.apply(service(`s${i}`));
    await eventually(() => assert.equal(fast.length, 10));
    assert.deepEqual(slow, ['ADDED s0@1']);
    assert.equal(store.stats().watchersDropped, 1);
    assert.equal(store.stats().watchers, 1);
    release();
    await eventually(() => assert.deepEqual(slow, ['ADDED s0@1', 'ERROR WEFT_ERR_WATCH_OVERFLOW']));
  });

  it('ends the watch of a listener that throws, counting it', async () => {
    const { store } = await newStore();
    let calls = 0;
    store.watch('Service', {}, () => {
      calls++;
      throw new Error('listener bug');
    });
    await store.apply(service('a'));
    await store.apply(service('b'));
    await eventually(() => assert.equal(store.stats().listenerErrors, 1));
    assert.equal(store.stats().watchers, 0);
    assert.equal(calls, 1);
  });

  it('sees changes written by another store on the same directory', async () => {
    const { store, stateDir } = await newStore();
    const { store: other } = await newStore(stateDir);
    const seen: string[] = [];
    store.watch('Service', {}, (e) => {
      seen.push(show(e));
    });
    await other.apply(service('books'));
    await eventually(() => assert.deepEqual(seen, ['ADDED books@1']));
    assert.equal((await store.get('Service', 'shop', 'books'))?.metadata.resourceVersion, '1');
  });
});
