/** The figures of bench/control-fanout.ts: percentiles from its raw measurements, and their Markdown table. */
import type { MemorySample } from './proc-stats.js';

/** One change: a Workload added to one service. */
export interface FanoutChange {
  readonly service: string;
  /** Time the PUT /api/v1/apply took to answer. */
  readonly applyMs: number;
  /** Per subscriber of the service: seen - sent. */
  readonly latenciesMs: readonly number[];
}

/** What the run measured, raw. */
export interface FanoutMeasurements {
  readonly subscribers: number;
  readonly services: number;
  readonly processes: number;
  /** Idle time before each measured change (0: back-to-back changes). */
  readonly pauseMs: number;
  /** From forking the subscriber processes to every stream having its initial state. */
  readonly subscribeMs: number;
  /** Control-plane memory with the services created, before any subscriber. */
  readonly unsubscribed: MemorySample;
  /** Control-plane memory once every stream is open and idle. */
  readonly idle: MemorySample;
  /** Control-plane memory after the last change (hwmBytes: the peak of the whole run). */
  readonly end: MemorySample;
  /** Control-plane user + system CPU during the change phase. */
  readonly cpuSeconds: number;
  /**
   * The subscriber processes' user + system CPU during the change phase: they share the machine
   * with the control plane, so their receive cost is part of every latency.
   */
  readonly subscriberCpuSeconds: number;
  readonly changes: readonly FanoutChange[];
  /**
   * The changes made first, while the processes' code is still being optimized: measured the same
   * way, reported apart, in none of the figures of `changes`.
   */
  readonly warmupChanges: readonly FanoutChange[];
  /** User + system CPU of the control plane and of the subscriber processes during the warm-up. */
  readonly warmupCpuSeconds: { readonly control: number; readonly subscribers: number };
  /** From the control plane's log; non-zero means some subscribers fell behind. */
  readonly slowSubscribersDisconnected: number;
}

/** A warm-up change in the results: its figures without the per-subscriber latencies. */
export interface WarmupChangeSummary {
  readonly service: string;
  readonly applyMs: number;
  readonly p50Ms: number;
  readonly lastSubscriberMs: number;
}

export interface FanoutResult extends Omit<FanoutMeasurements, 'warmupChanges'> {
  readonly warmupChanges: readonly WarmupChangeSummary[];
  readonly date: string;
  readonly node: string;
  /** Over every (change, subscriber) pair. */
  readonly latencyMs: {
    readonly p50: number;
    readonly p90: number;
    readonly p99: number;
    readonly max: number;
  };
  /** Per change, the latency of its last subscriber: the median and the worst change. */
  readonly lastSubscriberMs: { readonly p50: number; readonly max: number };
  /** The PUT /api/v1/apply answer time of the changes (the store write; part of every latency). */
  readonly applyAnswerMs: { readonly p50: number; readonly max: number };
  /** The warm-up changes: over every (change, subscriber) pair, and their last subscribers. */
  readonly warmupLatencyMs: { readonly p50: number; readonly max: number };
  readonly warmupLastSubscriberMs: { readonly p50: number; readonly max: number };
}

/** Nearest-rank percentile of an ascending array (p in 0..1). */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(sorted.length * p) - 1))];
}

const ascending = (xs: readonly number[]) => [...xs].sort((a, b) => a - b);
const round = (x: number) => Math.round(x * 100) / 100;

/** Adds the percentiles to the raw measurements. */
export function summarize(m: FanoutMeasurements): FanoutResult {
  const all = ascending(m.changes.flatMap((c) => c.latenciesMs));
  const last = ascending(m.changes.map((c) => Math.max(...c.latenciesMs)));
  const apply = ascending(m.changes.map((c) => c.applyMs));
  const warmAll = ascending(m.warmupChanges.flatMap((c) => c.latenciesMs));
  const warmLast = ascending(m.warmupChanges.map((c) => Math.max(...c.latenciesMs)));
  return {
    date: new Date().toISOString(),
    node: process.version,
    ...m,
    warmupChanges: m.warmupChanges.map((c) => {
      const sorted = ascending(c.latenciesMs);
      return {
        service: c.service,
        applyMs: round(c.applyMs),
        p50Ms: round(percentile(sorted, 0.5)),
        lastSubscriberMs: round(sorted.at(-1) ?? Number.NaN),
      };
    }),
    latencyMs: {
      p50: round(percentile(all, 0.5)),
      p90: round(percentile(all, 0.9)),
      p99: round(percentile(all, 0.99)),
      max: round(all.at(-1) ?? Number.NaN),
    },
    lastSubscriberMs: { p50: round(percentile(last, 0.5)), max: round(last.at(-1) ?? Number.NaN) },
    applyAnswerMs: { p50: round(percentile(apply, 0.5)), max: round(apply.at(-1) ?? Number.NaN) },
    warmupLatencyMs: { p50: round(percentile(warmAll, 0.5)), max: round(warmAll.at(-1) ?? Number.NaN) },
    warmupLastSubscriberMs: {
      p50: round(percentile(warmLast, 0.5)),
      max: round(warmLast.at(-1) ?? Number.NaN),
    },
  };
}

const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
const ms = (x: number) => `${x.toFixed(1)} ms`;

/**
 * `cpu` per change message delivered to one subscriber, as a suffix. It includes whatever else
 * the processes did meanwhile (keepalives of idle streams: noticeable with 10,000 streams).
 */
function perMessage(r: FanoutResult, cpuSeconds: number, changes = r.changes.length): string {
  const messages = changes * (r.subscribers / r.services);
  return messages > 0 ? ` (${((cpuSeconds * 1e6) / messages).toFixed(0)} us per delivered change)` : '';
}

/** A Markdown table of the headline figures. */
export function renderTable(r: FanoutResult): string {
  const perService = r.subscribers / r.services;
  const rows: [string, string][] = [
    [
      'subscribers (Get streams, one connection each)',
      `${r.subscribers} on ${r.services} services (${perService} each), ${r.processes} processes`,
    ],
    ['time to subscribe all (initial state)', ms(r.subscribeMs)],
    [
      'warm-up changes first (not in the figures below): propagation p50 / max; last subscriber p50 / max',
      r.warmupChanges.length === 0
        ? 'none'
        : `${r.warmupChanges.length}: ${ms(r.warmupLatencyMs.p50)} / ${ms(r.warmupLatencyMs.max)}; ` +
          `${ms(r.warmupLastSubscriberMs.p50)} / ${ms(r.warmupLastSubscriberMs.max)}`,
    ],
    [
      'warm-up CPU: control plane, subscriber processes',
      `${r.warmupCpuSeconds.control.toFixed(2)} s${perMessage(r, r.warmupCpuSeconds.control, r.warmupChanges.length)}, ` +
        `${r.warmupCpuSeconds.subscribers.toFixed(2)} s${perMessage(r, r.warmupCpuSeconds.subscribers, r.warmupChanges.length)}`,
    ],
    [
      'changes (one Workload added, one at a time)',
      `${r.changes.length}${r.pauseMs > 0 ? `, each after ${r.pauseMs} ms idle` : ', back to back'}`,
    ],
    [
      'propagation p50 / p90 / p99 (change, subscriber)',
      `${ms(r.latencyMs.p50)} / ${ms(r.latencyMs.p90)} / ${ms(r.latencyMs.p99)}`,
    ],
    ['propagation max', ms(r.latencyMs.max)],
    [
      'last subscriber of a change: p50 / max',
      `${ms(r.lastSubscriberMs.p50)} / ${ms(r.lastSubscriberMs.max)}`,
    ],
    [
      'PUT /api/v1/apply answered (store write): p50 / max',
      `${ms(r.applyAnswerMs.p50)} / ${ms(r.applyAnswerMs.max)}`,
    ],
    ['control-plane RSS before any subscriber (VmRSS)', mib(r.unsubscribed.rssBytes)],
    ['control-plane RSS idle, all subscribed (VmRSS)', mib(r.idle.rssBytes)],
    ['control-plane RSS after the changes (VmRSS)', mib(r.end.rssBytes)],
    ['control-plane peak RSS, whole run (VmHWM)', mib(r.end.hwmBytes)],
    ['control-plane CPU during the changes', `${r.cpuSeconds.toFixed(2)} s${perMessage(r, r.cpuSeconds)}`],
    [
      'subscriber processes CPU during the changes',
      `${r.subscriberCpuSeconds.toFixed(2)} s${perMessage(r, r.subscriberCpuSeconds)}`,
    ],
    ['slow subscribers disconnected', String(r.slowSubscribersDisconnected)],
  ];
  return ['| measure | value |', '|---|---|', ...rows.map(([k, v]) => `| ${k} | ${v} |`)].join('\n') + '\n';
}
