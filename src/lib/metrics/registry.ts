/**
 * A Prometheus registry, shared by the proxy and the control plane (which never import each other,
 * DESIGN.md §10): counter, gauge and histogram families whose children are keyed by
 * label set, rendered in text exposition format 0.0.4. Callers resolve a child once with `with()` and
 * hold it; updating a held child is a few field writes (no hashing, no allocation, no clock read).
 */

import { checkMetricName } from './exposition.js';
import {
  type Child,
  type CounterChild,
  Family,
  type Kind,
  type MakeChild,
  newCounter,
  newGauge,
  newHistogram,
  startClock,
} from './family.js';
import { MetricsError } from './metrics-error.js';

export { MetricsError, type MetricsErrorCode } from './metrics-error.js';

/** Label name → value. The key order of the first object that creates a child is its render order. */
export type Labels = Readonly<Record<string, string>>;

/** A value that only goes up. */
export interface Counter {
  /** Adds `by` (default 1). Negative or NaN amounts are ignored: a counter never goes down. */
  inc(by?: number): void;
}

/** A value that goes up and down. */
export interface Gauge {
  /** Adds `by` (default 1). */
  inc(by?: number): void;
  /** Subtracts `by` (default 1). */
  dec(by?: number): void;
  /** Replaces the value. */
  set(v: number): void;
}

/** Counts observations into fixed buckets, with their sum. */
export interface Histogram {
  /** Records `v` in the first bucket whose bound is ≥ v (else only in +Inf). NaN is ignored. */
  observe(v: number): void;
}

/**
 * Resolves the child for a label set. The same pairs (in any key order) give the same object until the
 * child is retired; a held child keeps working after retirement and rejoins the family on its next
 * update. Past the family's series limit, new label sets share one overflow child that is never
 * rendered, and each such call counts in `weft_metrics_series_dropped_total{family}`.
 * Throws MetricsError `WEFT_ERR_METRIC_LABEL` for an invalid label name (checked for new sets only).
 * Finding a known set costs a Map lookup per label and allocates nothing; holding the child is cheaper.
 */
export interface CounterFamily {
  with(labels: Labels): Counter;
}
/** As CounterFamily, for gauges. */
export interface GaugeFamily {
  with(labels: Labels): Gauge;
}
/** As CounterFamily, for histograms; `le` is reserved and rejected as a label name. */
export interface HistogramFamily {
  with(labels: Labels): Histogram;
}

/** Linkerd's `response_latency_ms` bucket bounds, in milliseconds. */
export const LATENCY_BUCKETS_MS: readonly number[] = Object.freeze([
  1, 2, 3, 4, 5, 10, 20, 30, 40, 50, 100, 200, 300, 400, 500, 1000, 2000, 3000, 4000, 5000, 10000, 20000,
  30000, 40000, 50000,
]);

const DROPPED_FAMILY = 'weft_metrics_series_dropped_total';

/** The metric families of one process, and their rendering. */
export class Registry {
  private readonly families = new Map<string, Family<Child>>();
  /** Sample names in use (a histogram `x` also takes x_bucket, x_sum, x_count). */
  private readonly sampleNames = new Set<string>([DROPPED_FAMILY]);
  private readonly maxSeries: number;
  /** Never retired and not size-bound: it has at most one child per registered family. */
  private readonly dropped: Family<CounterChild>;
  private readonly collectors: (() => void)[] = [];

  /**
   * `maxSeriesPerFamily` (default 10000, an integer ≥ 0) bounds the rendered children of each family.
   * Starts the shared coarse clock (an unref'd 1 s timer) that stamps updates for retireIdle().
   */
  constructor(options: { maxSeriesPerFamily?: number } = {}) {
    this.maxSeries = options.maxSeriesPerFamily ?? 10_000;
    if (!Number.isInteger(this.maxSeries) || this.maxSeries < 0) {
      throw new MetricsError('WEFT_ERR_METRICS_OPTIONS', 'maxSeriesPerFamily must be an integer ≥ 0');
    }
    const help = 'Label sets not recorded because their family was at its series limit.';
    const noDrops = () => {};
    this.dropped = new Family('counter', DROPPED_FAMILY, help, Number.POSITIVE_INFINITY, newCounter, noDrops);
    startClock();
  }

  /**
   * Registers counter family `name`, which must end in `_total`, or returns it if already registered
   * as a counter (the first help text stays). Throws MetricsError on an invalid name or one taken by
   * another family or its samples.
   */
  counter(name: string, help: string): CounterFamily {
    if (!name.endsWith('_total')) {
      throw new MetricsError('WEFT_ERR_METRIC_NAME', `counter ${name} must end in _total`);
    }
    return this.register('counter', name, help, newCounter, [], [name]);
  }

  /** Registers (or returns) gauge family `name`; throws as counter() does. */
  gauge(name: string, help: string): GaugeFamily {
    return this.register('gauge', name, help, newGauge, [], [name]);
  }

  /**
   * Registers (or returns, if the buckets are equal) histogram family `name` with finite, strictly
   * increasing bucket bounds; +Inf is implicit. Throws MetricsError as counter() does, or on bad or
   * mismatched buckets.
   */
  histogram(name: string, help: string, buckets: readonly number[]): HistogramFamily {
    buckets.forEach((b, i) => {
      if (!Number.isFinite(b) || (i > 0 && b <= buckets[i - 1])) {
        throw new MetricsError('WEFT_ERR_METRIC_BUCKETS', `${name}: buckets must be finite and increasing`);
      }
    });
    const names = [name, `${name}_bucket`, `${name}_sum`, `${name}_count`];
    return this.register('histogram', name, help, newHistogram, [...buckets], names);
  }

  /**
   * Retires children not updated for `olderThanMs` (on a clock of 1 s resolution), except gauges with
   * a nonzero value, and returns how many it retired. A retired child disappears from render(); one a
   * caller still holds rejoins its family on its next update (see CounterFamily).
   */
  retireIdle(olderThanMs: number): number {
    let retired = 0;
    for (const family of this.families.values()) retired += family.retireIdle(olderThanMs);
    return retired;
  }

  /**
   * Adds `collect`, called synchronously at the start of every render() to read figures that are
   * cheaper to sample at scrape time than to track (process memory, say). It must not throw.
   */
  addCollector(collect: () => void): void {
    this.collectors.push(collect);
  }

  /** Prometheus text exposition format 0.0.4 of every family, HELP and TYPE lines included. */
  render(): string {
    for (const collect of this.collectors) collect();
    const out: string[] = [];
    for (const family of this.families.values()) family.render(out);
    this.dropped.render(out);
    return out.length === 0 ? '' : `${out.join('\n')}\n`;
  }

  private register<C extends Child>(
    kind: Kind,
    name: string,
    help: string,
    make: MakeChild<C>,
    bounds: readonly number[],
    sampleNames: readonly string[],
  ): Family<C> {
    const existing = this.families.get(name);
    if (existing !== undefined) {
      if (existing.kind !== kind || existing.bounds.join() !== bounds.join()) {
        throw new MetricsError('WEFT_ERR_METRIC_CONFLICT', `${name} is already registered differently`);
      }
      return existing as unknown as Family<C>;
    }
    checkMetricName(name);
    const taken = sampleNames.find((s) => this.sampleNames.has(s));
    if (taken !== undefined) throw new MetricsError('WEFT_ERR_METRIC_CONFLICT', `${taken} is already in use`);
    for (const s of sampleNames) this.sampleNames.add(s);
    let drops: Counter | undefined;
    const onDrop = () => (drops ??= this.dropped.with({ family: name })).inc();
    const family = new Family(kind, name, help, this.maxSeries, make, onDrop, bounds);
    this.families.set(name, family as unknown as Family<Child>);
    return family;
  }
}
