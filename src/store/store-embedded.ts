/**
 * The embedded store: one host, state in a directory (DESIGN.md §7). Durable and crash-safe
 * through store-embedded-state.ts (one snapshot file, replaced atomically); safe with several
 * writing processes through store-embedded-lock.ts (every write is read-modify-write of the
 * snapshot under a cross-process lock, so the resourceVersion stays one increasing sequence).
 *
 * Reads are served from memory after a cheap check (one stat) that the file has not been
 * replaced by another process. Watchers see this process's writes as soon as they are durable,
 * and other processes' writes within `pollIntervalMs`.
 */
import { randomUUID } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { isDeepStrictEqual } from 'node:util';
import type { Resource, ResourceKind } from './resource.js';
import {
  checkResource,
  compareVersions,
  deepFreeze,
  describeResource,
  isResourceKind,
  isVersion,
} from './resource.js';
import type { ResourceList, Store, StoreStats, WatchListener, WatchOptions } from './store.js';
import { removeDeadLockTemps, withDirLock } from './store-embedded-lock.js';
import {
  EMPTY_STATE,
  objectKey,
  readState,
  removeStateTemps,
  type State,
  stateFingerprint,
  withChange,
  writeState,
} from './store-embedded-state.js';
import { ConflictError, ExpiredError, StoreClosedError, ValidationError } from './store-error.js';
import { type Change, WatchHub } from './store-watchers.js';

export interface EmbeddedStoreOptions {
  /** Directory holding the state (created if missing). */
  readonly stateDir: string;
  /** Changes kept for watches resuming from a resourceVersion (default 1000). */
  readonly historyLimit?: number;
  /** Events a watcher may fall behind before it is dropped (default 1000). */
  readonly maxQueuedEvents?: number;
  /** How long a write waits for another process's lock (default 10000 ms). */
  readonly lockTimeoutMs?: number;
  /** How often watchers check for other processes' writes (default 250 ms; 0 = never). */
  readonly pollIntervalMs?: number;
}

/** Opens (creating if needed) the store in `options.stateDir`; rejects with a StoreError. */
export async function openEmbeddedStore(options: EmbeddedStoreOptions): Promise<Store> {
  await mkdir(options.stateDir, { recursive: true });
  await removeDeadLockTemps(options.stateDir);
  const store = new EmbeddedStore(options);
  await store.refresh();
  return store;
}

class EmbeddedStore implements Store {
  private readonly dir: string;
  private readonly historyLimit: number;
  private readonly lockTimeoutMs: number;
  private readonly hub: WatchHub;
  private state: State = EMPTY_STATE;
  private fingerprint = '';
  private writes: Promise<unknown> = Promise.resolve();
  private refreshing: Promise<void> | undefined;
  private closed = false;
  private readonly poll: NodeJS.Timeout | undefined;

  constructor(options: EmbeddedStoreOptions) {
    this.dir = options.stateDir;
    this.historyLimit = options.historyLimit ?? 1000;
    this.lockTimeoutMs = options.lockTimeoutMs ?? 10_000;
    this.hub = new WatchHub(options.maxQueuedEvents ?? 1000);
    const pollIntervalMs = options.pollIntervalMs ?? 250;
    if (pollIntervalMs > 0) {
      this.poll = setInterval(() => {
        if (this.hub.size > 0) this.refresh().catch(() => {});
      }, pollIntervalMs);
      this.poll.unref();
    }
  }

  async get<K extends ResourceKind>(
    kind: K,
    namespace: string,
    name: string,
  ): Promise<Resource<K> | undefined> {
    await this.refresh();
    return this.state.objects.get(objectKey(kind, namespace, name)) as Resource<K> | undefined;
  }

  async list<K extends ResourceKind>(kind: K, namespace?: string): Promise<ResourceList<K>> {
    await this.refresh();
    const { objects, resourceVersion } = this.state;
    const prefix = namespace === undefined ? `${kind}/` : objectKey(kind, namespace, '');
    const keys = [...objects.keys()].filter((k) => k.startsWith(prefix)).sort();
    const items = keys.map((k) => objects.get(k) as Resource<K>);
    return deepFreeze({ items, resourceVersion: String(resourceVersion) });
  }

  async apply(input: unknown): Promise<Resource> {
    const r = checkResource(input);
    const { kind, metadata } = r;
    return this.write((current) => {
      const existing = current.objects.get(objectKey(kind, metadata.namespace, metadata.name));
      const expected = metadata.resourceVersion;
      const stored = existing?.metadata.resourceVersion ?? 'none';
      if (expected !== undefined && expected !== stored)
        throw new ConflictError(describeResource(r), expected, stored);
      if (
        existing &&
        isDeepStrictEqual(existing.spec, r.spec) &&
        isDeepStrictEqual(existing.metadata.labels, metadata.labels)
      )
        return { result: existing };
      const rv = current.resourceVersion + 1;
      const object = deepFreeze({
        apiVersion: r.apiVersion,
        kind,
        metadata: {
          name: metadata.name,
          namespace: metadata.namespace,
          resourceVersion: String(rv),
          uid: existing?.metadata.uid ?? randomUUID(),
          creationTimestamp: existing?.metadata.creationTimestamp ?? new Date().toISOString(),
          ...(metadata.labels === undefined ? {} : { labels: metadata.labels }),
        },
        spec: r.spec,
      }) as Resource;
      return { result: object, change: { type: existing ? 'MODIFIED' : 'ADDED', object, rv } };
    });
  }

  delete(kind: ResourceKind, namespace: string, name: string): Promise<Resource | undefined> {
    return this.write((current) => {
      const existing = current.objects.get(objectKey(kind, namespace, name));
      if (!existing) return { result: undefined };
      const rv = current.resourceVersion + 1;
      const object = deepFreeze({
        ...existing,
        metadata: { ...existing.metadata, resourceVersion: String(rv) },
      });
      return { result: object, change: { type: 'DELETED', object, rv } };
    });
  }

  watch<K extends ResourceKind>(kind: K, options: WatchOptions, listener: WatchListener<K>): () => void {
    const l = listener as WatchListener;
    if (this.closed) return this.hub.addFailed(l, new StoreClosedError());
    if (!isResourceKind(kind)) return this.hub.addFailed(l, invalid('kind', `unknown kind ${String(kind)}`));
    const from = options.fromResourceVersion;
    if (from !== undefined && !isVersion(from))
      return this.hub.addFailed(l, invalid('fromResourceVersion', 'must be a decimal number'));
    const { history, historyStart, resourceVersion } = this.state;
    if (from !== undefined && compareVersions(from, String(historyStart)) < 0)
      return this.hub.addFailed(l, new ExpiredError(from, String(historyStart)));
    const afterRv = from === undefined ? resourceVersion : Number(from);
    const backlog = history.filter((c) => c.rv > afterRv);
    return this.hub.add({ kind, namespace: options.namespace, afterRv }, l, backlog);
  }

  stats(): StoreStats {
    return {
      resourceVersion: String(this.state.resourceVersion),
      watchers: this.hub.size,
      watchersDropped: this.hub.dropped,
      listenerErrors: this.hub.listenerErrors,
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.poll);
    await this.writes.catch(() => {});
    await this.refreshing?.catch(() => {});
    this.hub.closeAll();
  }

  /** Loads the state file if another process replaced it since we last read it. */
  refresh(): Promise<void> {
    if (this.closed) return Promise.reject(new StoreClosedError());
    this.refreshing ??= (async () => {
      try {
        const fp = await stateFingerprint(this.dir);
        if (fp !== this.fingerprint) {
          const state = await readState(this.dir);
          this.fingerprint = fp;
          this.advance(state);
        }
      } finally {
        this.refreshing = undefined;
      }
    })();
    return this.refreshing;
  }

  /**
   * One durable change: under the directory lock, reads the current state, lets `decide` compute
   * the change (or throw), writes it and publishes it. Writes of this store run one at a time.
   */
  private write<T>(decide: (current: State) => { result: T; change?: Change }): Promise<T> {
    if (this.closed) return Promise.reject(new StoreClosedError());
    const run = this.writes.then(() =>
      withDirLock(this.dir, this.lockTimeoutMs, async () => {
        await removeStateTemps(this.dir);
        const fp = await stateFingerprint(this.dir);
        const current = await readState(this.dir);
        const { result, change } = decide(current);
        if (change) {
          const next = withChange(current, change, this.historyLimit);
          await writeState(this.dir, next);
          this.fingerprint = await stateFingerprint(this.dir);
          this.advance(next);
        } else {
          this.fingerprint = fp;
          this.advance(current);
        }
        return result;
      }),
    );
    this.writes = run.catch(() => {});
    return run;
  }

  /** Moves to a newer state, publishing the changes in between (or failing watches on a gap). */
  private advance(next: State): void {
    const seen = this.state.resourceVersion;
    if (next.resourceVersion <= seen) return;
    this.state = next;
    if (next.historyStart > seen) this.hub.failAll(new ExpiredError(String(seen), String(next.historyStart)));
    else this.hub.publish(next.history.filter((c) => c.rv > seen));
  }
}

function invalid(path: string, message: string): ValidationError {
  return new ValidationError([{ path, message }]);
}
