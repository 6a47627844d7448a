/**
 * Liveness of registered Workloads (DESIGN.md §8): a Workload whose proxy died without
 * deregistering (SIGKILL) must leave discovery within 2 s. Every tracked Workload (one that
 * declares `spec.adminAddress`) has its proxy's admin `GET /live` probed every `intervalMs`; after
 * `failureThreshold` failures in a row it is unready, and the first success makes it ready again.
 * A Workload that is not tracked has no health information and is always ready, so resources
 * written by hand (or with addresses this host cannot reach) keep their old behaviour.
 */
import http from 'node:http';
import { formatHostPort, parseHostPort } from '../../lib/addr.js';
import type { Logger } from '../../lib/log.js';

export interface WorkloadHealthOptions {
  /** Pause between two probes of one Workload (default 500 ms). */
  readonly intervalMs?: number;
  /** Failed probes in a row that make a Workload unready (default 2). */
  readonly failureThreshold?: number;
  /** A probe not answered within this counts as failed (default: intervalMs). */
  readonly probeTimeoutMs?: number;
}

/** Called when a tracked Workload turns ready or unready; never synchronously from track/untrack. */
export type HealthListener = (id: string, ready: boolean) => void;

export interface WorkloadHealth {
  /** Starts (or retargets) probing Workload `id` (`namespace/name`) at `adminAddr` (`host:port`); it starts ready. */
  track(id: string, adminAddr: string): void;
  /** Stops probing `id` and forgets its state. Idempotent. */
  untrack(id: string): void;
  /** False only for a tracked Workload that failed its last `failureThreshold` probes. */
  isReady(id: string): boolean;
  /** Adds a listener of readiness changes; returns its removal. */
  onChange(listener: HealthListener): () => void;
  /** Stops every probe; listeners are not called again. */
  close(): void;
}

interface Target {
  addr: string;
  failures: number;
  ready: boolean;
  probing: boolean;
}

export const DEFAULT_HEALTH_INTERVAL_MS = 500;
export const DEFAULT_HEALTH_FAILURE_THRESHOLD = 2;

/** A health checker with its own timer (unref'd: it never keeps a process alive). */
export function newWorkloadHealth(log: Logger, options: WorkloadHealthOptions = {}): WorkloadHealth {
  const intervalMs = options.intervalMs ?? DEFAULT_HEALTH_INTERVAL_MS;
  const threshold = options.failureThreshold ?? DEFAULT_HEALTH_FAILURE_THRESHOLD;
  const timeoutMs = options.probeTimeoutMs ?? intervalMs;
  const targets = new Map<string, Target>();
  const listeners = new Set<HealthListener>();
  let closed = false;

  const timer = setInterval(() => {
    for (const [id, t] of targets) if (!t.probing) void probeOnce(id, t);
  }, intervalMs);
  timer.unref();

  async function probeOnce(id: string, t: Target): Promise<void> {
    t.probing = true;
    const ok = await probeLive(t.addr, timeoutMs);
    t.probing = false;
    if (closed || targets.get(id) !== t) return;
    t.failures = ok ? 0 : t.failures + 1;
    const ready = ok || (t.ready && t.failures < threshold);
    if (ready === t.ready) return;
    t.ready = ready;
    log.info(ready ? 'workload live again' : 'workload not live; removed from discovery', {
      workload: id,
      admin: t.addr,
    });
    for (const l of listeners) l(id, ready);
  }

  return {
    track(id, adminAddr) {
      const old = targets.get(id);
      if (old?.addr === adminAddr) return;
      targets.set(id, { addr: adminAddr, failures: 0, ready: true, probing: false });
    },
    untrack: (id) => void targets.delete(id),
    isReady: (id) => targets.get(id)?.ready ?? true,
    onChange(l) {
      listeners.add(l);
      return () => void listeners.delete(l);
    },
    close() {
      closed = true;
      clearInterval(timer);
      targets.clear();
      listeners.clear();
    },
  };
}

/** True when `GET http://<addr>/live` answers 2xx within `timeoutMs`; never rejects. */
export function probeLive(addr: string, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    let hp: { host: string; port: number };
    try {
      hp = parseHostPort(addr);
    } catch {
      return resolve(false);
    }
    const req = http.request(
      { host: hp.host, port: hp.port, path: '/live', agent: false, headers: { host: formatHostPort(hp) } },
      (res) => {
        res.resume();
        resolve((res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 300);
      },
    );
    req.setTimeout(timeoutMs, () => req.destroy(new Error('probe timed out')));
    req.on('error', () => resolve(false));
    req.end();
  });
}
