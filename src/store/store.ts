/**
 * The store interface of DESIGN.md §7. Controllers read configuration only through it, so the
 * embedded, etcd and Kubernetes implementations are interchangeable. The model is the Kubernetes
 * API's: every change gets a new, larger resourceVersion; `list` returns a consistent snapshot and
 * the resourceVersion it reflects; `watch` from that resourceVersion delivers exactly the changes
 * made after it, so list + watch never misses or repeats a change.
 */
import type { Resource, ResourceKind } from './resource.js';
import type { StoreError } from './store-error.js';

/** A consistent snapshot of one kind. */
export interface ResourceList<K extends ResourceKind = ResourceKind> {
  /** Sorted by namespace, then name. */
  readonly items: readonly Resource<K>[];
  /** The store's resourceVersion this snapshot reflects; watch from here to follow it. */
  readonly resourceVersion: string;
}

/**
 * One change, or the end of a watch. After an ERROR event the watch is over and the listener is
 * never called again: the watcher lists again and watches from the list's resourceVersion.
 */
export type WatchEvent<K extends ResourceKind = ResourceKind> =
  | { readonly type: 'ADDED' | 'MODIFIED'; readonly object: Resource<K> }
  /** `object` is the resource as it was last stored, with the deletion's resourceVersion. */
  | { readonly type: 'DELETED'; readonly object: Resource<K> }
  | { readonly type: 'ERROR'; readonly error: StoreError };

export interface WatchOptions {
  /** Only this namespace (default: all). */
  readonly namespace?: string;
  /**
   * Deliver the changes made after this resourceVersion (typically a list's), replayed from the
   * store's bounded history. Older than the history → a single ERROR event with code
   * WEFT_ERR_STORE_EXPIRED. Omitted → changes after the newest resourceVersion this store has
   * seen; to follow a snapshot exactly, pass its list's resourceVersion.
   */
  readonly fromResourceVersion?: string;
}

/**
 * Receives the events of one watch, in resourceVersion order, one at a time: never synchronously
 * from `watch()` or from the write that caused the event, and never again before a returned
 * promise settles. A listener that is more than the store's per-watcher queue bound behind is
 * dropped with an ERROR event (code WEFT_ERR_WATCH_OVERFLOW), delivered once its current call
 * settles. A listener that throws or rejects ends its watch (counted as a listener error).
 */
export type WatchListener<K extends ResourceKind = ResourceKind> = (
  event: WatchEvent<K>,
) => void | Promise<void>;

/** Counters a store keeps about itself (for metrics). */
export interface StoreStats {
  readonly resourceVersion: string;
  readonly watchers: number;
  /** Watchers dropped because their queue overflowed. */
  readonly watchersDropped: number;
  /** Watchers ended because their listener threw or rejected. */
  readonly listenerErrors: number;
}

/**
 * Resources returned by a store are deeply frozen; treat them as values. Every method rejects
 * with a StoreError (StoreClosedError after close).
 */
export interface Store {
  get<K extends ResourceKind>(kind: K, namespace: string, name: string): Promise<Resource<K> | undefined>;
  list<K extends ResourceKind>(kind: K, namespace?: string): Promise<ResourceList<K>>;
  /**
   * Validates and creates or replaces a resource (labels and spec; the store sets
   * resourceVersion, uid and creationTimestamp) and returns it as stored. Applying what is
   * already stored changes nothing and returns the stored resource. When the input carries a
   * metadata.resourceVersion, it must be the stored one (else ConflictError, WEFT_ERR_CONFLICT).
   * Resolves once the change is durable.
   */
  apply(resource: unknown): Promise<Resource>;
  /** Removes a resource; resolves to it as it was (undefined when absent) once durable. */
  delete(kind: ResourceKind, namespace: string, name: string): Promise<Resource | undefined>;
  /** Starts a watch of one kind; the returned function ends it (idempotent, no more calls after). */
  watch<K extends ResourceKind>(kind: K, options: WatchOptions, listener: WatchListener<K>): () => void;
  stats(): StoreStats;
  /** Waits for writes in progress, ends every watch (without an event) and releases resources. */
  close(): Promise<void>;
}
