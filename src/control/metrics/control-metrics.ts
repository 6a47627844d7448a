/**
 * The control plane's own metrics (DESIGN.md §6), served as Prometheus text on the API port at
 * `GET /metrics`. Counts that the hot paths already keep (subscribers, slow-subscriber
 * disconnects, probes, collections, store watchers) are read from their components' `stats()` at
 * scrape time, so serving metrics adds no work to fan-out; only updates sent and store writes are
 * counted as they happen, by thin wrappers (countUpdates, countStoreWrites).
 */
import { registerProcessMetrics } from '../../lib/metrics/process-metrics.js';
import { type Counter, type Gauge, Registry } from '../../lib/metrics/registry.js';
import type { Store } from '../../store/store.js';
import type { DestinationServer } from '../destination/destination-server.js';
import type { DestinationWatcher } from '../destination/destination-watcher.js';
import type { WorkloadGc } from '../health/workload-gc.js';
import type { WorkloadHealth } from '../health/workload-health.js';
import type { CaStatus } from '../identity/ca.js';
import { countStoreWrites } from './store-write-counter.js';

/** The components whose `stats()` a scrape reads. */
export interface ControlMetricsSources {
  readonly store: Store;
  readonly watcher: DestinationWatcher;
  readonly destination: DestinationServer;
  readonly health: WorkloadHealth;
  readonly gc: WorkloadGc;
  /** The policy server (docs/policy.md), when it runs. */
  readonly policy?: { stats(): { readonly streams: number; readonly slowSubscribersDisconnected: number } };
  /** The identity service (docs/identity.md): its CA, Certify outcomes and unused tokens. */
  readonly identity?: {
    readonly ca: { status(): CaStatus };
    readonly server: { counts(): Readonly<Record<string, number>> };
    readonly tokens: { outstanding(): number };
  };
}

export interface ControlMetrics {
  readonly registry: Registry;
  /** `store`, with every write through it counted in `weft_control_store_writes_total`. */
  countStoreWrites(store: Store): Store;
  /** `watcher`, with every message handed to a subscriber counted in `weft_control_destination_updates_total`. */
  countUpdates(watcher: DestinationWatcher): DestinationWatcher;
  /** Sets the components a scrape reads; until then only the process metrics and the counters above move. */
  observe(sources: ControlMetricsSources): void;
  /** Reads every source and renders the registry (text exposition format 0.0.4); never rejects. */
  render(): Promise<string>;
}

/** A counter that follows a total kept elsewhere: each call adds what it grew by. */
function follow(counter: Counter): (total: number) => void {
  let seen = 0;
  return (total) => {
    if (total > seen) counter.inc(total - seen);
    seen = Math.max(seen, total);
  };
}

export function newControlMetrics(registry = new Registry()): ControlMetrics {
  const r = registry;
  registerProcessMetrics(r);
  /** An unlabelled counter that follows a total kept by a component. */
  const totalOf = (name: string, help: string) => follow(r.counter(name, help).with({}));
  const streams = r.gauge('weft_control_destination_streams', 'Destination streams open, by method.');
  const streamsGet = streams.with({ method: 'Get' });
  const streamsProfile = streams.with({ method: 'GetProfile' });
  const authorities = r
    .gauge('weft_control_destination_authorities', 'Authorities with at least one Destination subscriber.')
    .with({});
  const updates = r.counter(
    'weft_control_destination_updates_total',
    'Messages handed to Destination subscribers (snapshots and changes), by method.',
  );
  const updatesGet = updates.with({ method: 'Get' });
  const updatesProfile = updates.with({ method: 'GetProfile' });
  const slowDisconnects = totalOf(
    'weft_control_destination_slow_subscribers_disconnected_total',
    'Destination subscribers disconnected for falling more than the queue bound behind.',
  );
  const relists = totalOf(
    'weft_control_destination_relists_total',
    'Store watches the Destination watcher restarted with a fresh list.',
  );
  const policyStreams = r.gauge('weft_control_policy_streams', 'Policy streams open.').with({});
  const policySlow = totalOf(
    'weft_control_policy_slow_subscribers_disconnected_total',
    'Policy subscribers disconnected for falling more than the queue bound behind.',
  );
  const writes = r.counter(
    'weft_control_store_writes_total',
    'Store writes that changed a resource, by kind and operation.',
  );
  const writeErrors = r.counter(
    'weft_control_store_write_errors_total',
    'Store writes rejected or failed, by operation.',
  );
  for (const op of ['apply', 'delete']) writeErrors.with({ op });
  const resourceVersion = r
    .gauge('weft_control_store_resource_version', "The store's newest resourceVersion.")
    .with({});
  const watchers = r.gauge('weft_control_store_watchers', 'Store watches open.').with({});
  const watchersDropped = totalOf(
    'weft_control_store_watchers_dropped_total',
    'Store watches ended because their queue overflowed.',
  );
  const listenerErrors = totalOf(
    'weft_control_store_listener_errors_total',
    'Store watches ended because their listener failed.',
  );
  const known = r.gauge('weft_control_workloads_known', 'Workloads in the store.').with({});
  const probed = r.gauge(
    'weft_control_workloads_probed',
    'Workloads with a proxy admin address, by the health of their liveness probes (unhealthy: out of discovery).',
  );
  const healthy: Gauge = probed.with({ health: 'healthy' });
  const unhealthy: Gauge = probed.with({ health: 'unhealthy' });
  const probes = r.counter(
    'weft_control_workload_probes_total',
    'Liveness probes of Workload proxies, by result.',
  );
  const probesOk = follow(probes.with({ result: 'success' }));
  const probesFailed = follow(probes.with({ result: 'failure' }));
  const collected = totalOf(
    'weft_control_workloads_collected_total',
    'Stale Workloads deleted after failing their probes for too long.',
  );
  const collectErrors = totalOf(
    'weft_control_workload_collect_errors_total',
    'Deletions of stale Workloads that failed.',
  );
  const certify = r.counter(
    'weft_control_identity_certify_total',
    'Certify calls answered, by result (ok, or the gRPC status name of the refusal).',
  );
  const certifyFollowers = new Map<string, (total: number) => void>();
  certifyFollowers.set('ok', follow(certify.with({ result: 'ok' })));
  const tokensOutstanding = r
    .gauge('weft_control_identity_tokens_outstanding', 'Bootstrap tokens minted and not yet used or expired.')
    .with({});
  const issuerExpiry = r
    .gauge(
      'weft_control_identity_issuer_expiration_timestamp_seconds',
      "When the issuer's certificate expires.",
    )
    .with({});
  // One series, not one per anchor: anchors come and go with rotation, and a removed anchor's
  // series would linger. What an alert needs is the first expiry.
  const anchorExpiry = r
    .gauge(
      'weft_control_identity_anchors_expiration_timestamp_seconds',
      'When the first of the trust anchors in the bundle expires.',
    )
    .with({});
  const anchorCount = r.gauge('weft_control_identity_anchors', 'Trust anchors in the bundle.').with({});
  let sources: ControlMetricsSources | undefined;

  async function collect(s: ControlMetricsSources): Promise<void> {
    const w = s.watcher.stats();
    streamsGet.set(w.endpointSubscribers);
    streamsProfile.set(w.profileSubscribers);
    authorities.set(w.authorities);
    relists(w.relists);
    slowDisconnects(s.destination.stats().slowSubscribersDisconnected);
    if (s.policy) {
      const p = s.policy.stats();
      policyStreams.set(p.streams);
      policySlow(p.slowSubscribersDisconnected);
    }
    const st = s.store.stats();
    const rv = Number(st.resourceVersion);
    if (Number.isFinite(rv)) resourceVersion.set(rv);
    watchers.set(st.watchers);
    watchersDropped(st.watchersDropped);
    listenerErrors(st.listenerErrors);
    const h = s.health.stats();
    healthy.set(h.tracked - h.unready);
    unhealthy.set(h.unready);
    probesOk(h.probesSucceeded);
    probesFailed(h.probesFailed);
    if (s.identity) {
      for (const [result, total] of Object.entries(s.identity.server.counts())) {
        let followCount = certifyFollowers.get(result);
        if (!followCount) certifyFollowers.set(result, (followCount = follow(certify.with({ result }))));
        followCount(total);
      }
      tokensOutstanding.set(s.identity.tokens.outstanding());
      const ca = s.identity.ca.status();
      issuerExpiry.set(Date.parse(ca.issuer.notAfter) / 1000);
      anchorCount.set(ca.anchors.length);
      anchorExpiry.set(Math.min(...ca.anchors.map((a) => Date.parse(a.notAfter) / 1000)));
    }
    const g = s.gc.stats();
    collected(g.collected);
    collectErrors(g.errors);
    try {
      known.set((await s.store.list('Workload')).items.length);
    } catch {
      // The store is closing: the gauge keeps its last value.
    }
  }

  return {
    registry,
    countStoreWrites: (store) =>
      countStoreWrites(store, {
        written: (kind, op) => writes.with({ kind, op }).inc(),
        failed: (op) => writeErrors.with({ op }).inc(),
      }),
    countUpdates: (watcher) => ({
      start: () => watcher.start(),
      subscribeEndpoints: (authority, listener) =>
        watcher.subscribeEndpoints(authority, (m) => {
          updatesGet.inc();
          listener(m);
        }),
      subscribeProfile: (authority, listener) =>
        watcher.subscribeProfile(authority, (m) => {
          updatesProfile.inc();
          listener(m);
        }),
      stats: () => watcher.stats(),
      close: () => watcher.close(),
    }),
    observe(s) {
      sources = s;
    },
    async render() {
      if (sources) await collect(sources);
      return registry.render();
    },
  };
}
