/**
 * A Store that counts the writes made through it (the store interface keeps no such count, and
 * the etcd and Kubernetes stores could not answer it for the whole cluster anyway): every
 * controller and the API write through this one, so its counts are this control plane's writes.
 */
import type { Resource } from '../../store/resource.js';
import type { Store } from '../../store/store.js';

/** What the counting store reports; called synchronously after each write settles. */
export interface StoreWriteObserver {
  /** A write that changed the store: `op` is `apply` or `delete`. */
  written(kind: string, op: 'apply' | 'delete'): void;
  /** A write that was rejected or failed (validation, conflict, I/O). */
  failed(op: 'apply' | 'delete'): void;
}

/**
 * Wraps `store`; reads, watches and close pass straight through. An apply that changed nothing
 * (the store returns the resource as it already was: its resourceVersion is not newer than the
 * store's before the call) and a delete of an absent resource are not counted as writes.
 */
export function countStoreWrites(store: Store, observer: StoreWriteObserver): Store {
  const rvNow = () => Number(store.stats().resourceVersion);
  return {
    get: (kind, namespace, name) => store.get(kind, namespace, name),
    list: (kind, namespace) => store.list(kind, namespace),
    watch: (kind, options, listener) => store.watch(kind, options, listener),
    stats: () => store.stats(),
    close: () => store.close(),
    async apply(resource: unknown): Promise<Resource> {
      const before = rvNow();
      let stored: Resource;
      try {
        stored = await store.apply(resource);
      } catch (err) {
        observer.failed('apply');
        throw err;
      }
      // Without numeric resourceVersions (another store), every apply counts.
      const rv = Number(stored.metadata.resourceVersion);
      if (!(rv <= before)) observer.written(stored.kind, 'apply');
      return stored;
    },
    async delete(kind, namespace, name) {
      let deleted: Resource | undefined;
      try {
        deleted = await store.delete(kind, namespace, name);
      } catch (err) {
        observer.failed('delete');
        throw err;
      }
      if (deleted !== undefined) observer.written(kind, 'delete');
      return deleted;
    },
  };
}
