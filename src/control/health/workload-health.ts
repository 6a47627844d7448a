/**
 * Liveness of registered Workloads (DESIGN.md §8): a Workload whose proxy died without
 * deregistering (SIGKILL) must leave discovery within 2 s. Every tracked Workload (one that
 * declares `spec.adminAddress`) has its proxy's admin `GET /live` probed every `intervalMs`; after
 * `failureThreshold` failures in a row it is unready, and the first success makes it ready again.
 * A Workload that is not tracked has no health information and is always ready, so resources
 * written by hand (or with addresses this host cannot reach) keep their old behaviour.
 * A Workload whose probes have all failed for longer than `gcAfterMs` is reported as expired
 * (workload-gc.ts deletes it); the streak, kept in memory, starts over after a restart.
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
  /**
   * After this long with every probe failing, a Workload is reported to the onExpired listeners
   * (default DEFAULT_WORKLOAD_GC_AFTER_MS; 0: never).
   */
  readonly gcAfterMs?: number;
}

/**
 * Called after each failed probe of a Workload that has failed continuously for at least
 * `gcAfterMs` (so a listener whose action failed hears again one interval later), with the admin
 * address that was probed. Never synchronously from track/untrack.
 */
export type ExpiredListener = (id: string, adminAddr: string, failingForMs: number) => void;

/** Counts since start, and the tracked Workloads now, for metrics. */
export interface WorkloadHealthStats {
  readonly tracked: number;
  /** Tracked Workloads out of discovery now. */
  readonly unready: number;
  readonly probesSucceeded: number;
  readonly probesFailed: number;
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
  /** Adds a listener of expired Workloads; returns its removal. */
  onExpired(listener: ExpiredListener): () => void;
  stats(): WorkloadHealthStats;
  /** Stops every probe; listeners are not called again. */
  close(): void;
}

interface Target {
  addr: string;
  failures: number;
  ready: boolean;
  probing: boolean;
  /** performance.now() of the first failure of the current streak of failures. */
  failingSince: number | undefined;
}

export const DEFAULT_HEALTH_INTERVAL_MS = 500;
export const DEFAULT_HEALTH_FAILURE_THRESHOLD = 2;
/**
 * One minute: sixty times longer than a dead proxy takes to leave discovery, so collection is only
 * housekeeping and never what stops traffic, and long enough that a proxy briefly unreachable but
 * alive (a stopped or paused process, a host waking from sleep, an event loop stalled under load)
 * keeps its registration; short enough that a crashed `weft run` is gone from `weft get
 * workloads` within about a minute.
 */
export const DEFAULT_WORKLOAD_GC_AFTER_MS = 60_000;

/** A health checker with its own timer (unref'd: it never keeps a process alive). */
export function newWorkloadHealth(log: Logger, options: WorkloadHealthOptions = {}): WorkloadHealth {
  const intervalMs = options.intervalMs ?? DEFAULT_HEALTH_INTERVAL_MS;
  const threshold = options.failureThreshold ?? DEFAULT_HEALTH_FAILURE_THRESHOLD;
  const timeoutMs = options.probeTimeoutMs ?? intervalMs;
  const gcAfterMs = options.gcAfterMs ?? DEFAULT_WORKLOAD_GC_AFTER_MS;
  const targets = new Map<string, Target>();
  const listeners = new Set<HealthListener>();
  const expiredListeners = new Set<ExpiredListener>();
  let probesSucceeded = 0;
  let probesFailed = 0;
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
    if (ok) probesSucceeded++;
    else probesFailed++;
    t.failures = ok ? 0 : t.failures + 1;
    t.failingSince = ok ? undefined : (t.failingSince ?? performance.now());
    const ready = ok || (t.ready && t.failures < threshold);
    if (!ok) notifyIfExpired(id, t);
    if (ready === t.ready) return;
    t.ready = ready;
    log.info(ready ? 'workload live again' : 'workload not live; removed from discovery', {
      workload: id,
      admin: t.addr,
    });
    for (const l of listeners) l(id, ready);
  }

  function notifyIfExpired(id: string, t: Target): void {
    const failingForMs = performance.now() - (t.failingSince ?? performance.now());
    if (gcAfterMs <= 0 || failingForMs < gcAfterMs) return;
    for (const l of expiredListeners) l(id, t.addr, failingForMs);
  }

  return {
    track(id, adminAddr) {
      const old = targets.get(id);
      if (old?.addr === adminAddr) return;
      targets.set(id, { addr: adminAddr, failures: 0, ready: true, probing: false, failingSince: undefined });
    },
    untrack: (id) => void targets.delete(id),
    isReady: (id) => targets.get(id)?.ready ?? true,
    onChange(l) {
      listeners.add(l);
      return () => void listeners.delete(l);
    },
    onExpired(l) {
      expiredListeners.add(l);
      return () => void expiredListeners.delete(l);
    },
    stats() {
      let unready = 0;
      for (const t of targets.values()) if (!t.ready) unready++;
      return { tracked: targets.size, unready, probesSucceeded, probesFailed };
    },
    close() {
      closed = true;
      clearInterval(timer);
      targets.clear();
      listeners.clear();
      expiredListeners.clear();
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
