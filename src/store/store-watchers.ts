/**
 * Fan-out of store changes to watchers, shared by store implementations. Each watcher has its own
 * bounded queue and delivers asynchronously, one event at a time, so a slow listener only ever
 * delays itself: when its queue is full it is dropped with an overflow error, never waited for.
 */
import type { Resource, ResourceKind } from './resource.js';
import type { WatchEvent, WatchListener } from './store.js';
import { type StoreError, WatcherOverflowError } from './store-error.js';

/** A change as the hub receives it: its resourceVersion is object.metadata.resourceVersion. */
export interface Change {
  readonly type: 'ADDED' | 'MODIFIED' | 'DELETED';
  readonly object: Resource;
  /** The numeric resourceVersion of the change. */
  readonly rv: number;
}

export interface WatchFilter {
  readonly kind: ResourceKind;
  readonly namespace?: string;
  /** Only changes with a larger resourceVersion. */
  readonly afterRv: number;
}

/** Fans changes out to watchers. `publish` must be called with changes in resourceVersion order. */
export class WatchHub {
  private readonly watchers = new Set<Watcher>();
  dropped = 0;
  listenerErrors = 0;

  constructor(private readonly maxQueuedEvents: number) {}

  get size(): number {
    return this.watchers.size;
  }

  /** Adds a watcher; `backlog` (in order) is queued first. Returns the function that ends it. */
  add(filter: WatchFilter, listener: WatchListener, backlog: readonly Change[]): () => void {
    const w = new Watcher(this, filter, listener, this.maxQueuedEvents);
    this.watchers.add(w);
    for (const c of backlog) w.offer(c);
    return () => w.end();
  }

  /** Adds a watcher that only ever receives `error` (e.g. a watch from an expired version). */
  addFailed(listener: WatchListener, error: StoreError): () => void {
    // The filter never matches: the watcher is sealed by fail() before any change is offered.
    const w = new Watcher(this, { kind: 'Service', afterRv: Number.MAX_SAFE_INTEGER }, listener, 1);
    this.watchers.add(w);
    w.fail(error);
    return () => w.end();
  }

  publish(changes: readonly Change[]): void {
    for (const c of changes) for (const w of this.watchers) w.offer(c);
  }

  /** Ends every watch with `error` (e.g. the history no longer covers what they have seen). */
  failAll(error: StoreError): void {
    for (const w of this.watchers) w.fail(error);
  }

  /** Ends every watch without an event. */
  closeAll(): void {
    for (const w of [...this.watchers]) w.end();
  }

  forget(w: Watcher): void {
    this.watchers.delete(w);
  }
}

class Watcher {
  private queue: WatchEvent[] = [];
  private draining = false;
  /** Accepts no more changes (failed or ended); the queue may still hold the final ERROR. */
  private sealed = false;
  private ended = false;

  constructor(
    private readonly hub: WatchHub,
    private readonly filter: WatchFilter,
    private readonly listener: WatchListener,
    private readonly maxQueuedEvents: number,
  ) {}

  offer(c: Change): void {
    const f = this.filter;
    if (this.sealed || c.rv <= f.afterRv || c.object.kind !== f.kind) return;
    if (f.namespace !== undefined && c.object.metadata.namespace !== f.namespace) return;
    if (this.queue.length >= this.maxQueuedEvents) {
      this.hub.dropped++;
      this.fail(new WatcherOverflowError(this.maxQueuedEvents));
      return;
    }
    this.queue.push({ type: c.type, object: c.object } as WatchEvent);
    this.schedule();
  }

  /** Replaces whatever is queued by a final ERROR event. */
  fail(error: StoreError): void {
    if (this.sealed) return;
    this.sealed = true;
    this.queue = [{ type: 'ERROR', error }];
    this.hub.forget(this);
    this.schedule();
  }

  end(): void {
    this.sealed = true;
    this.ended = true;
    this.queue = [];
    this.hub.forget(this);
  }

  private schedule(): void {
    if (this.draining) return;
    this.draining = true;
    setImmediate(() => void this.drain());
  }

  private async drain(): Promise<void> {
    while (!this.ended && this.queue.length > 0) {
      const event = this.queue.shift()!;
      try {
        const r = this.listener(event);
        if (r !== undefined) await r;
      } catch {
        this.hub.listenerErrors++;
        this.end();
      }
      if (event.type === 'ERROR') this.end();
    }
    this.draining = false;
  }
}
