/**
 * The watcher tier of Policy: follows the store's Servers, AuthorizationPolicies, Namespaces
 * (and Workloads, for proxies that name only their identity) with list + watch (listing again when a watch ends), keeps them indexed, and after every change
 * recompiles the policy of each subscribed workload in the namespace it touched, sending it only
 * when it differs from what that subscriber last got.
 */
import type { DefaultPolicy, InboundPolicy } from '../../lib/authz.js';
import type { Logger } from '../../lib/log.js';
import type { Resource } from '../../store/resource.js';
import type { Store, WatchEvent } from '../../store/store.js';
import { compileInboundPolicy, type PolicyIndex, type WorkloadRef } from './policy-compiler.js';

const KINDS = ['Server', 'AuthorizationPolicy', 'Namespace', 'Workload'] as const;
type PolicyKind = (typeof KINDS)[number];

/** Receives complete policies, synchronously and in order; must not throw or block. */
export type PolicyListener = (policy: InboundPolicy) => void;

export interface PolicyWatcherStats {
  readonly subscribers: number;
  readonly relists: number;
}

export interface PolicyWatcher {
  /** Lists the three kinds and starts watching; resolves once the first snapshot is indexed. */
  start(): Promise<void>;
  /** The policy of `w` now (what a new subscriber gets first). */
  policyFor(w: WorkloadRef): InboundPolicy;
  /**
   * Calls `listener` once, synchronously, with the current policy of `w`, then with every policy
   * that differs from the last one sent. Returns the unsubscribe function (idempotent).
   */
  subscribe(w: WorkloadRef, listener: PolicyListener): () => void;
  stats(): PolicyWatcherStats;
  /** Ends the store watches; listeners are not called again. */
  close(): void;
}

interface Subscription {
  readonly w: WorkloadRef;
  readonly listener: PolicyListener;
  last: string;
}

export function newPolicyWatcher(store: Store, log: Logger, meshDefault: DefaultPolicy): PolicyWatcher {
  const servers = new Map<string, Map<string, Resource<'Server'>>>();
  const authorizations = new Map<string, Map<string, Resource<'AuthorizationPolicy'>>>();
  const namespaces = new Map<string, Resource<'Namespace'>>();
  const workloads = new Map<string, Map<string, Resource<'Workload'>>>();
  const index: PolicyIndex = { servers, authorizations, namespaces, workloads };
  const subs = new Set<Subscription>();
  const stops = new Map<PolicyKind, () => void>();
  let relists = 0;
  let closed = false;

  /** The namespace whose workloads a resource affects. */
  const scopeOf = (kind: PolicyKind, r: Resource) =>
    kind === 'Namespace' ? r.metadata.name : r.metadata.namespace;

  function put(kind: PolicyKind, r: Resource, present: boolean): void {
    if (kind === 'Namespace') {
      if (present) namespaces.set(r.metadata.name, r as Resource<'Namespace'>);
      else namespaces.delete(r.metadata.name);
      return;
    }
    const byNs = byNamespace(kind);
    let m = byNs.get(r.metadata.namespace);
    if (!m) byNs.set(r.metadata.namespace, (m = new Map()));
    if (present) m.set(r.metadata.name, r);
    else m.delete(r.metadata.name);
  }

  function byNamespace(kind: Exclude<PolicyKind, 'Namespace'>): Map<string, Map<string, Resource>> {
    return (kind === 'Server' ? servers : kind === 'Workload' ? workloads : authorizations) as Map<
      string,
      Map<string, Resource>
    >;
  }

  /**
   * Recompiles the subscribers of the touched namespaces. A Workload change only matters to
   * subscribers known by identity alone (the others said what they are).
   */
  function publish(scopes: Iterable<string>, workloadsOnly = false): void {
    const touched = new Set(scopes);
    for (const s of subs) {
      if (!touched.has(s.w.namespace)) continue;
      if (workloadsOnly && (s.w.service !== '' || s.w.workload !== '' || s.w.identity === '')) continue;
      send(s);
    }
  }

  function send(s: Subscription): void {
    const policy = compileInboundPolicy(s.w, index, meshDefault);
    const text = JSON.stringify(policy);
    if (text === s.last) return;
    s.last = text;
    s.listener(policy);
  }

  function onEvent(kind: PolicyKind, event: WatchEvent): void {
    if (closed) return;
    if (event.type === 'ERROR') {
      log.warn('store watch ended; listing again', { kind, code: event.error.code });
      stops.delete(kind);
      relists++;
      void follow(kind).catch((err) => log.error('store relist failed', { kind, error: String(err) }));
      return;
    }
    put(kind, event.object, event.type !== 'DELETED');
    publish([scopeOf(kind, event.object)], kind === 'Workload');
  }

  async function follow(kind: PolicyKind): Promise<void> {
    const list = await store.list(kind);
    if (closed) return;
    const touched = new Set<string>();
    if (kind === 'Namespace') {
      for (const n of namespaces.keys()) touched.add(n);
      namespaces.clear();
    } else {
      const byNs = byNamespace(kind);
      for (const n of byNs.keys()) touched.add(n);
      byNs.clear();
    }
    for (const r of list.items) {
      put(kind, r, true);
      touched.add(scopeOf(kind, r));
    }
    publish(touched, kind === 'Workload');
    stops.set(
      kind,
      store.watch(kind, { fromResourceVersion: list.resourceVersion }, (e) => onEvent(kind, e)),
    );
  }

  return {
    async start() {
      await Promise.all(KINDS.map(follow));
    },
    policyFor: (w) => compileInboundPolicy(w, index, meshDefault),
    subscribe(w, listener) {
      const s: Subscription = { w, listener, last: '' };
      subs.add(s);
      send(s);
      return () => void subs.delete(s);
    },
    stats: () => ({ subscribers: subs.size, relists }),
    close() {
      closed = true;
      for (const stop of stops.values()) stop();
      stops.clear();
      subs.clear();
    },
  };
}
