/**
 * The Destination object a discovery implementation hands out and keeps updating: one per
 * authority for as long as discovery knows it, so balancers and queues holding it see every change.
 */
import type { Destination, Endpoint } from './discovery.js';

export class MutableDestination implements Destination {
  readonly authority: string;
  #opaque: boolean;
  #endpoints: readonly Endpoint[];
  readonly #listeners = new Set<() => void>();

  constructor(authority: string, opaque: boolean, endpoints: readonly Endpoint[]) {
    this.authority = authority;
    this.#opaque = opaque;
    this.#endpoints = endpoints;
  }

  get opaque(): boolean {
    return this.#opaque;
  }

  get endpoints(): readonly Endpoint[] {
    return this.#endpoints;
  }

  /** Whether anyone watches now (a request waiting for an endpoint). */
  get watched(): boolean {
    return this.#listeners.size > 0;
  }

  /** Replaces what is known (either part may be left as is) and tells the watchers. */
  update(change: { endpoints?: readonly Endpoint[]; opaque?: boolean }): void {
    if (change.endpoints !== undefined) this.#endpoints = change.endpoints;
    if (change.opaque !== undefined) this.#opaque = change.opaque;
    for (const listener of [...this.#listeners]) listener();
  }

  watch(listener: () => void): () => void {
    // A wrapper per call, so the same function may watch twice and stop each watch on its own.
    const entry = () => listener();
    this.#listeners.add(entry);
    return () => this.#listeners.delete(entry);
  }
}
