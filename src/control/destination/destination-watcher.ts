/**
 * The watcher tier of Destination (like linkerd2's endpoints_watcher.go): follows the store's
 * Services and Workloads with list + watch, keeps them indexed in memory, and fans each change
 * out to the listeners of every authority it affects. A change is translated once per authority
 * and the same message objects go to every listener.
 */
import type { DestinationProfile, Update } from '../../../proto/destination.js';
import type { Logger } from '../../lib/log.js';
import type { Resource, ResourceKind } from '../../store/resource.js';
import type { Store, WatchEvent } from '../../store/store.js';
import type { WorkloadHealth } from '../health/workload-health.js';
import {
  diffEndpointSets,
  type EndpointSet,
  endpointSetOf,
  parseServiceAuthority,
  profileOf,
  type ServicePortKey,
  snapshotUpdate,
  UNKNOWN,
} from './endpoint-translator.js';

/**
 * Receives the messages of one subscription, synchronously and in order. Must not throw and
 * must not block (queue the message and return): it runs inside the fan-out loop. Messages are
 * shared by every listener of an authority and must not be changed (the server encodes each
 * message object once, for all its streams).
 */
export type Listener<T> = (message: T) => void;

export interface DestinationWatcherStats {
  /** Authorities with at least one subscriber. */
  readonly authorities: number;
  readonly endpointSubscribers: number;
  readonly profileSubscribers: number;
  /** Store watches restarted with a fresh list (expired or overflowed). */
  readonly relists: number;
}

export interface DestinationWatcher {
  /** Lists both kinds and starts watching; resolves once the first snapshot is indexed. */
  start(): Promise<void>;
  /**
   * Subscribes to the endpoints of a normalized authority. The listener is called once,
   * synchronously from here, with the full state (see snapshotUpdate), then with every change.
   * Returns the unsubscribe function (idempotent).
   */
  subscribeEndpoints(authority: string, listener: Listener<Update>): () => void;
  /** Like subscribeEndpoints, for profiles: a full profile now and on every change to the Service. */
  subscribeProfile(authority: string, listener: Listener<DestinationProfile>): () => void;
  stats(): DestinationWatcherStats;
  /** Ends the store watches; listeners are not called again. */
  close(): void;
}

/** Everything subscribed under one authority. */
interface Topic {
  readonly authority: string;
  readonly key: ServicePortKey | null;
  set: EndpointSet;
  profile: DestinationProfile;
  readonly endpointListeners: Set<Listener<Update>>;
  readonly profileListeners: Set<Listener<DestinationProfile>>;
}

const serviceId = (namespace: string, name: string) => `${namespace}/${name}`;

/**
 * A watcher over `store` (started with `start()`). With `health`, Workloads that declare
 * `spec.adminAddress` are tracked there, and one it reports unready is left out of every endpoint
 * set until it is ready again; without it (or for untracked Workloads) every Workload is an endpoint.
 */
export function newDestinationWatcher(
  store: Store,
  log: Logger,
  health?: WorkloadHealth,
): DestinationWatcher {
  const services = new Map<string, Resource<'Service'>>();
  /** Workloads by `namespace/name`, and by the Service they serve. */
  const workloads = new Map<string, Resource<'Workload'>>();
  const workloadsByService = new Map<string, Map<string, Resource<'Workload'>>>();
  const topics = new Map<string, Topic>();
  const topicsByService = new Map<string, Set<Topic>>();
  const stops = new Map<ResourceKind, () => void>();
  let relists = 0;
  let closed = false;

  function indexWorkload(w: Resource<'Workload'>, present: boolean): string[] {
    const id = serviceId(w.metadata.namespace, w.metadata.name);
    const touched: string[] = [];
    const old = workloads.get(id);
    if (old) {
      const svc = serviceId(old.metadata.namespace, old.spec.service);
      workloadsByService.get(svc)?.delete(id);
      touched.push(svc);
      workloads.delete(id);
    }
    if (present && w.spec.adminAddress !== undefined) health?.track(id, w.spec.adminAddress);
    else health?.untrack(id);
    if (present) {
      const svc = serviceId(w.metadata.namespace, w.spec.service);
      let m = workloadsByService.get(svc);
      if (!m) workloadsByService.set(svc, (m = new Map()));
      m.set(id, w);
      workloads.set(id, w);
      touched.push(svc);
    }
    return touched;
  }

  /** Recomputes every topic of the given Services and sends what changed. */
  function publish(serviceIds: Iterable<string>): void {
    for (const svc of new Set(serviceIds)) for (const topic of topicsByService.get(svc) ?? []) refresh(topic);
  }

  function refresh(topic: Topic): void {
    if (!topic.key) return;
    const svc = serviceId(topic.key.namespace, topic.key.name);
    const service = services.get(svc);
    const members = [...(workloadsByService.get(svc)?.entries() ?? [])];
    const live = health ? members.filter(([id]) => health.isReady(id)) : members;
    const next = endpointSetOf(
      topic.key,
      service,
      live.map(([, w]) => w),
    );
    const updates = diffEndpointSets(topic.set, next);
    topic.set = next;
    for (const u of updates) for (const l of topic.endpointListeners) l(u);
    const profile = profileOf(topic.key, service);
    if (JSON.stringify(profile) !== JSON.stringify(topic.profile)) {
      topic.profile = profile;
      for (const l of topic.profileListeners) l(profile);
    }
  }

  function onEvent(kind: 'Service' | 'Workload', event: WatchEvent): void {
    if (closed) return;
    if (event.type === 'ERROR') {
      log.warn('store watch ended; listing again', { kind, code: event.error.code });
      stops.delete(kind);
      relists++;
      void follow(kind).catch((err) => log.error('store relist failed', { kind, error: String(err) }));
      return;
    }
    const present = event.type !== 'DELETED';
    if (kind === 'Service') {
      const s = event.object as Resource<'Service'>;
      const id = serviceId(s.metadata.namespace, s.metadata.name);
      if (present) services.set(id, s);
      else services.delete(id);
      publish([id]);
    } else publish(indexWorkload(event.object as Resource<'Workload'>, present));
  }

  /** Lists `kind`, replaces the index of that kind with the list, publishes, then watches from there. */
  async function follow(kind: 'Service' | 'Workload'): Promise<void> {
    const list = await store.list(kind);
    if (closed) return;
    const touched = new Set<string>(kind === 'Service' ? services.keys() : []);
    if (kind === 'Service') {
      services.clear();
      for (const s of list.items as readonly Resource<'Service'>[]) {
        const id = serviceId(s.metadata.namespace, s.metadata.name);
        services.set(id, s);
        touched.add(id);
      }
    } else {
      for (const w of [...workloads.values()]) for (const id of indexWorkload(w, false)) touched.add(id);
      for (const w of list.items as readonly Resource<'Workload'>[])
        for (const id of indexWorkload(w, true)) touched.add(id);
    }
    publish(touched);
    stops.set(
      kind,
      store.watch(kind, { fromResourceVersion: list.resourceVersion }, (e) => onEvent(kind, e)),
    );
  }

  const stopHealth = health?.onChange((id) => {
    const w = workloads.get(id);
    if (w) publish([serviceId(w.metadata.namespace, w.spec.service)]);
  });

  function topicFor(authority: string): Topic {
    let topic = topics.get(authority);
    if (topic) return topic;
    const key = parseServiceAuthority(authority);
    topic = {
      authority,
      key,
      set: UNKNOWN,
      profile: profileOf(null, undefined),
      endpointListeners: new Set(),
      profileListeners: new Set(),
    };
    topics.set(authority, topic);
    if (key) {
      const svc = serviceId(key.namespace, key.name);
      let set = topicsByService.get(svc);
      if (!set) topicsByService.set(svc, (set = new Set()));
      set.add(topic);
      refresh(topic);
    }
    return topic;
  }

  function release(topic: Topic): void {
    if (topic.endpointListeners.size > 0 || topic.profileListeners.size > 0) return;
    topics.delete(topic.authority);
    if (topic.key) topicsByService.get(serviceId(topic.key.namespace, topic.key.name))?.delete(topic);
  }

  function subscribe<T>(
    authority: string,
    pick: (t: Topic) => Set<Listener<T>>,
    first: (t: Topic) => T,
    l: Listener<T>,
  ) {
    const topic = topicFor(authority);
    pick(topic).add(l);
    l(first(topic));
    let done = false;
    return () => {
      if (done) return;
      done = true;
      pick(topic).delete(l);
      release(topic);
    };
  }

  return {
    async start() {
      await Promise.all([follow('Service'), follow('Workload')]);
    },
    subscribeEndpoints: (authority, l) =>
      subscribe(
        authority,
        (t) => t.endpointListeners,
        (t) => snapshotUpdate(t.set),
        l,
      ),
    subscribeProfile: (authority, l) =>
      subscribe(
        authority,
        (t) => t.profileListeners,
        (t) => t.profile,
        l,
      ),
    stats() {
      let endpointSubscribers = 0;
      let profileSubscribers = 0;
      for (const t of topics.values()) {
        endpointSubscribers += t.endpointListeners.size;
        profileSubscribers += t.profileListeners.size;
      }
      return { authorities: topics.size, endpointSubscribers, profileSubscribers, relists };
    },
    close() {
      closed = true;
      stopHealth?.();
      for (const stop of stops.values()) stop();
      stops.clear();
    },
  };
}
