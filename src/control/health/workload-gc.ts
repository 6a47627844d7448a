/**
 * Garbage collection of stale Workloads: a Workload whose proxy's liveness probes have failed
 * continuously for longer than the health checker's `gcAfterMs` (its `weft run` was SIGKILLed,
 * say, so nobody deregistered it) is deleted from the store, logged and counted. It left discovery
 * long before (workload-health.ts); this only keeps the store from filling with the dead.
 */
import type { Logger } from '../../lib/log.js';
import type { Store } from '../../store/store.js';
import type { WorkloadHealth } from './workload-health.js';

export interface WorkloadGcStats {
  /** Workloads deleted as stale since start. */
  readonly collected: number;
  /** Deletions that failed (retried on the next failed probe). */
  readonly errors: number;
}

export interface WorkloadGc {
  stats(): WorkloadGcStats;
  /** Stops collecting (a deletion in flight still completes). Idempotent. */
  close(): void;
}

/** Collects the Workloads `health` reports expired, from `store`. */
export function newWorkloadGc(store: Store, health: WorkloadHealth, log: Logger): WorkloadGc {
  /** Workload ids with a deletion in flight: expiry is reported on every failed probe. */
  const inFlight = new Set<string>();
  let collected = 0;
  let errors = 0;

  async function collect(id: string, adminAddr: string, failingForMs: number): Promise<void> {
    const [namespace, name] = splitId(id);
    const w = await store.get('Workload', namespace, name);
    // Re-registered meanwhile at another admin address: the checker has started over with it.
    if (w === undefined || w.spec.adminAddress !== adminAddr) return;
    const deleted = await store.delete('Workload', namespace, name);
    if (deleted === undefined) return;
    collected++;
    log.info('stale workload garbage-collected', {
      workload: id,
      admin: adminAddr,
      failingForMs: Math.round(failingForMs),
      resourceVersion: deleted.metadata.resourceVersion,
    });
  }

  const stop = health.onExpired((id, adminAddr, failingForMs) => {
    if (inFlight.has(id)) return;
    inFlight.add(id);
    collect(id, adminAddr, failingForMs)
      .catch((err: unknown) => {
        errors++;
        log.warn('could not garbage-collect a stale workload', { workload: id, error: String(err) });
      })
      .finally(() => inFlight.delete(id));
  });

  return {
    stats: () => ({ collected, errors }),
    close: stop,
  };
}

function splitId(id: string): [string, string] {
  const slash = id.indexOf('/');
  return [id.slice(0, slash), id.slice(slash + 1)];
}
