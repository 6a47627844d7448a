/**
 * The balancer of one destination with its wait queue (DESIGN.md §4–5: every queue has a
 * capacity, every wait a deadline). When no endpoint is available (none in discovery, or all in
 * the penalty box) a request waits, in arrival order, until one is: discovery adds one, a
 * backoff runs out, or a probe succeeds. After the fail-fast deadline it fails with
 * NoEndpointsError (503 `no endpoints`); when the queue is full it fails at once with
 * LoadShedError (503 `load shed`), like Linkerd's fail-fast and load-shed layers.
 */
import { LoadShedError, NoEndpointsError } from '../../lib/errors.js';
import type { Destination, Endpoint } from '../discovery/discovery.js';
import { EndpointBalancer, type EndpointBalancerOptions } from './endpoint-balancer.js';

export interface BalanceQueueOptions {
  /** Requests that may wait for an endpoint at once; more are shed. 0: none waits. */
  readonly capacity: number;
  /** How long a request waits for an endpoint before it fails (0: it fails at once). */
  readonly failFastMs: number;
}

interface Waiter {
  readonly resolve: (ep: Endpoint) => void;
  readonly timer: NodeJS.Timeout;
}

/**
 * One destination's EndpointBalancer and the requests waiting for it. Watches the destination
 * only while someone waits, so an idle one holds no listener and no timer.
 */
export class BalanceQueue {
  readonly balancer: EndpointBalancer;
  readonly #dest: Destination;
  readonly #opts: BalanceQueueOptions;
  readonly #waiters: Waiter[] = [];
  readonly #now: () => number;
  #unwatch: (() => void) | undefined;
  /** Wakes the queue when a penalty box may have opened up by time alone. */
  #wakeTimer: NodeJS.Timeout | undefined;
  #wakeAtMs: number | undefined;

  constructor(dest: Destination, opts: BalanceQueueOptions, balancer: Partial<EndpointBalancerOptions> = {}) {
    this.#dest = dest;
    this.#opts = opts;
    this.#now = balancer.now ?? (() => performance.now());
    this.balancer = new EndpointBalancer({
      ...balancer,
      now: this.#now,
      onProbeSettled: () => this.#drain(),
    });
  }

  /** Requests waiting now. */
  get waiting(): number {
    return this.#waiters.length;
  }

  /**
   * The endpoint for one request or connection: at once (synchronously) when one is available
   * and nobody waits ahead; else a promise of one, in arrival order. Throws or rejects with
   * LoadShedError (queue full) or NoEndpointsError (the deadline passed).
   */
  pick(): Endpoint | Promise<Endpoint> {
    if (this.#waiters.length === 0) {
      const ep = this.balancer.pick(this.#dest.endpoints);
      if (ep) return ep;
      if (this.#opts.failFastMs === 0) throw new NoEndpointsError(this.#dest.authority);
    }
    if (this.#waiters.length >= this.#opts.capacity) {
      throw this.#opts.capacity === 0
        ? new NoEndpointsError(this.#dest.authority)
        : new LoadShedError(this.#dest.authority, this.#opts.capacity);
    }
    return new Promise<Endpoint>((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        timer: setTimeout(() => {
          this.#remove(waiter);
          reject(new NoEndpointsError(this.#dest.authority));
        }, this.#opts.failFastMs),
      };
      this.#waiters.push(waiter);
      this.#unwatch ??= this.#dest.watch(() => this.#drain());
      this.#armWake();
    });
  }

  /**
   * Another endpoint than `failed` for a request that could not connect to it, if one is
   * available now (no waiting: the request already waited once).
   */
  pickOther(failed: Endpoint): Endpoint | undefined {
    return this.balancer.pick(this.#dest.endpoints, failed);
  }

  /** Hands available endpoints to waiters, first come first served. */
  #drain(): void {
    while (this.#waiters.length > 0) {
      const ep = this.balancer.pick(this.#dest.endpoints);
      if (!ep) break;
      const waiter = this.#waiters.shift() as Waiter;
      clearTimeout(waiter.timer);
      waiter.resolve(ep);
    }
    if (this.#waiters.length === 0) this.#idle();
    else this.#armWake();
  }

  #remove(waiter: Waiter): void {
    const i = this.#waiters.indexOf(waiter);
    if (i >= 0) this.#waiters.splice(i, 1);
    if (this.#waiters.length === 0) this.#idle();
  }

  /** Sets the wake timer to the next time an endpoint may become available by time alone. */
  #armWake(): void {
    const atMs = this.balancer.nextAvailableAtMs(this.#dest.endpoints);
    if (atMs === this.#wakeAtMs) return;
    clearTimeout(this.#wakeTimer);
    this.#wakeAtMs = atMs;
    this.#wakeTimer =
      atMs === undefined
        ? undefined
        : setTimeout(
            () => {
              this.#wakeTimer = undefined;
              this.#wakeAtMs = undefined;
              this.#drain();
            },
            // +1: timers may fire a little early; the backoff must surely have run out.
            Math.max(0, atMs - this.#now()) + 1,
          );
  }

  #idle(): void {
    this.#unwatch?.();
    this.#unwatch = undefined;
    clearTimeout(this.#wakeTimer);
    this.#wakeTimer = undefined;
    this.#wakeAtMs = undefined;
  }
}
