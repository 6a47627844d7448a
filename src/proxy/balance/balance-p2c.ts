/**
 * Power-of-two-choices balancing over the endpoints of one destination, by pending requests
 * (the peak-EWMA latency weighting of DESIGN.md §5 arrives with the control plane issue).
 * Cheap: two random picks and two map lookups per request.
 */
import type { Endpoint } from '../discovery/discovery.js';

export class PendingCounter {
  readonly #pending = new Map<string, number>();

  /** Picks an endpoint; undefined when there is none with a positive weight. */
  pick(endpoints: readonly Endpoint[]): Endpoint | undefined {
    const live = endpoints.length;
    if (live === 0) return undefined;
    if (live === 1) return endpoints[0].weight > 0 ? endpoints[0] : undefined;
    const i = Math.floor(Math.random() * live);
    let j = Math.floor(Math.random() * (live - 1));
    if (j >= i) j++;
    const a = endpoints[i];
    const b = endpoints[j];
    return this.#load(a) <= this.#load(b) ? a : b;
  }

  #load(ep: Endpoint): number {
    return ep.weight > 0 ? ((this.#pending.get(ep.addr) ?? 0) + 1) / ep.weight : Number.POSITIVE_INFINITY;
  }

  /** Counts a request to `ep` as pending until the returned function is called. */
  start(ep: Endpoint): () => void {
    this.#pending.set(ep.addr, (this.#pending.get(ep.addr) ?? 0) + 1);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const n = (this.#pending.get(ep.addr) ?? 1) - 1;
      if (n <= 0) this.#pending.delete(ep.addr);
      else this.#pending.set(ep.addr, n);
    };
  }
}
