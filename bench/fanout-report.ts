/** The figures of bench/control-fanout.ts: percentiles from its raw measurements, and their Markdown table. */
import type { MemorySample } from './proc-stats.js';

/** What the run measured, raw. */
export interface FanoutMeasurements {
  readonly subscribers: number;
  readonly services: number;
  readonly processes: number;
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
  readonly changes: readonly {
    readonly service: string;
    /** Time the PUT /api/v1/apply took to answer. */
    readonly applyMs: number;
    /** Per subscriber of the service: seen - sent. */
    readonly latenciesMs: readonly number[];
  }[];
  /** From the control plane's log; non-zero means some subscribers fell behind. */
  readonly slowSubscribersDisconnected: number;
}

export interface FanoutResult extends FanoutMeasurements {
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
  return {
    date: new Date().toISOString(),
    node: process.version,
    ...m,
    latencyMs: {
      p50: round(percentile(all, 0.5)),
      p90: round(percentile(all, 0.9)),
      p99: round(percentile(all, 0.99)),
      max: round(all.at(-1) ?? Number.NaN),
    },
    lastSubscriberMs: { p50: round(percentile(last, 0.5)), max: round(last.at(-1) ?? Number.NaN) },
    applyAnswerMs: { p50: round(percentile(apply, 0.5)), max: round(apply.at(-1) ?? Number.NaN) },
  };
}

const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
const ms = (x: number) => `${x.toFixed(1)} ms`;

/** A Markdown table of the headline figures. */
export function renderTable(r: FanoutResult): string {
  const perService = r.subscribers / r.services;
  const rows: [string, string][] = [
    [
      'subscribers (Get streams, one connection each)',
      `${r.subscribers} on ${r.services} services (${perService} each), ${r.processes} processes`,
    ],
    ['time to subscribe all (initial state)', ms(r.subscribeMs)],
    ['changes (one Workload added, one at a time)', String(r.changes.length)],
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
    ['control-plane CPU during the changes', `${r.cpuSeconds.toFixed(2)} s`],
    ['slow subscribers disconnected', String(r.slowSubscribersDisconnected)],
  ];
  return ['| measure | value |', '|---|---|', ...rows.map(([k, v]) => `| ${k} | ${v} |`)].join('\n') + '\n';
}
