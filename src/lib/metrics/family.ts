/**
 * The insides of a metric family: its children (one per label set) and the cache that maps label
 * sets to them, with the series bound, the overflow child and idle retirement.
 */

import { canonicalKey, checkLabelName, escapeHelp, formatNumber, labelText, sample } from './exposition.js';
import { LabelTrie, type TrieNode } from './label-trie.js';
import type { Counter, Gauge, Histogram, Labels } from './registry.js';

/**
 * Coarse wall clock (ms) for last-updated stamps, refreshed once a second by an unref'd timer, so
 * that updates never call Date.now(). Ages measured with it are accurate to about a second.
 */
let now = Date.now();
let clockTimer: NodeJS.Timeout | undefined;

/** Starts the coarse clock if it is not running; idempotent. The timer never keeps the process up. */
export function startClock(): void {
  if (clockTimer !== undefined) return;
  clockTimer = setInterval(() => {
    now = Date.now();
  }, 1000);
  clockTimer.unref();
}

export type Kind = 'counter' | 'gauge' | 'histogram';

/** A child: one label set's value(s), with what the family needs to cache, retire and revive it. */
export abstract class Child {
  updatedAt = now;
  retired = false;
  /** The family's trie paths to this child: one per key order that with() has been given. */
  readonly paths: TrieNode<Child>[] = [];
  constructor(
    /** A copy of the labels that created the child, to put it back in the trie when revived. */
    readonly labels: Labels,
    /** The canonical key (label names sorted): its identity in the family. */
    readonly key: string,
    /** The labels as rendered, in the key order of the labels that created the child. */
    readonly labelText: string,
  ) {}
  /** Whether retireIdle may remove this child once it is idle. */
  retirable(): boolean {
    return true;
  }
  abstract render(name: string, out: string[]): void;
}

// Each update first redirects a retired child to the live one (see Family.revive): one boolean test.

export class CounterChild extends Child implements Counter {
  private value = 0;
  constructor(
    private readonly family: Family<CounterChild>,
    labels: Labels,
    key: string,
    labelText: string,
  ) {
    super(labels, key, labelText);
  }
  inc(by = 1): void {
    const live = this.retired ? this.family.revive(this) : this;
    if (by >= 0) {
      live.value += by;
      live.updatedAt = now;
    }
  }
  render(name: string, out: string[]): void {
    out.push(sample(name, this.labelText, this.value));
  }
}

class GaugeChild extends Child implements Gauge {
  private value = 0;
  constructor(
    private readonly family: Family<GaugeChild>,
    labels: Labels,
    key: string,
    labelText: string,
  ) {
    super(labels, key, labelText);
  }
  inc(by = 1): void {
    const live = this.retired ? this.family.revive(this) : this;
    live.value += by;
    live.updatedAt = now;
  }
  dec(by = 1): void {
    this.inc(-by);
  }
  set(v: number): void {
    const live = this.retired ? this.family.revive(this) : this;
    live.value = v;
    live.updatedAt = now;
  }
  /** A nonzero gauge (open connections, say) describes the present, however long it is unchanged. */
  override retirable(): boolean {
    return this.value === 0;
  }
  render(name: string, out: string[]): void {
    out.push(sample(name, this.labelText, this.value));
  }
}

class HistogramChild extends Child implements Histogram {
  /** Per-bucket (not cumulative) counts; the last slot is the +Inf bucket. */
  private readonly counts: Float64Array;
  private sum = 0;
  private count = 0;
  constructor(
    private readonly family: Family<HistogramChild>,
    labels: Labels,
    key: string,
    labelText: string,
  ) {
    super(labels, key, labelText);
    this.counts = new Float64Array(family.bounds.length + 1);
  }
  observe(v: number): void {
    const live = this.retired ? this.family.revive(this) : this;
    if (Number.isNaN(v)) return;
    const bounds = this.family.bounds;
    let i = 0;
    while (i < bounds.length && v > bounds[i]) i++;
    live.counts[i]++;
    live.sum += v;
    live.count++;
    live.updatedAt = now;
  }
  render(name: string, out: string[]): void {
    const prefix = `${name}_bucket{${this.labelText === '' ? '' : `${this.labelText},`}le="`;
    const le = this.family.leTexts;
    let cumulative = 0;
    for (let i = 0; i < le.length; i++) {
      cumulative += this.counts[i];
      out.push(`${prefix}${le[i]}"} ${formatNumber(cumulative)}`);
    }
    out.push(`${prefix}+Inf"} ${formatNumber(this.count)}`);
    out.push(sample(`${name}_sum`, this.labelText, this.sum));
    out.push(sample(`${name}_count`, this.labelText, this.count));
  }
}

export type MakeChild<C extends Child> = (family: Family<C>, labels: Labels, key: string, text: string) => C;
export const newCounter: MakeChild<CounterChild> = (f, l, key, text) => new CounterChild(f, l, key, text);
export const newGauge: MakeChild<GaugeChild> = (f, l, key, text) => new GaugeChild(f, l, key, text);
export const newHistogram: MakeChild<HistogramChild> = (f, l, key, text) =>
  new HistogramChild(f, l, key, text);

/**
 * One metric family. Renders at most `maxSeries` children; label sets past that share an overflow
 * child that is never rendered, and each such with() call is reported to `onDrop`.
 */
export class Family<C extends Child> {
  /** Live children by canonical key (label names sorted), in creation order: what render() shows. */
  private readonly series = new Map<string, C>();
  /** Live children by their label pairs in callers' key order: the with() fast path. */
  private readonly trie = new LabelTrie<C>();
  private overflow: C | undefined;
  readonly leTexts: readonly string[];

  constructor(
    readonly kind: Kind,
    readonly name: string,
    private readonly help: string,
    private readonly maxSeries: number,
    private readonly make: MakeChild<C>,
    private readonly onDrop: () => void,
    readonly bounds: readonly number[] = [],
  ) {
    this.leTexts = bounds.map(formatNumber);
  }

  /** The child for `labels`: see CounterFamily in registry.ts for the contract. */
  with(labels: Labels): C {
    return this.trie.get(labels) ?? this.resolve(labels);
  }

  /** Slow path of with(): labels not seen before (a new set, or a known set in a new key order). */
  private resolve(labels: Labels): C {
    const reserved = this.kind === 'histogram' ? 'le' : undefined;
    for (const name in labels) checkLabelName(this.name, name, reserved);
    const text = labelText(labels);
    const key = canonicalKey(labels, text);
    const known = this.series.get(key);
    if (known !== undefined) {
      // Bound the aliases too: a caller permuting keys endlessly must not grow the trie.
      if (this.trie.size < 2 * this.maxSeries) known.paths.push(this.trie.set(labels, known));
      return known;
    }
    if (this.series.size >= this.maxSeries) {
      this.onDrop();
      this.overflow ??= this.make(this, {}, '', '');
      return this.overflow;
    }
    const child = this.make(this, { ...labels }, key, text);
    this.series.set(key, child);
    child.paths.push(this.trie.set(labels, child));
    return child;
  }

  /**
   * Called by a retired child on update; returns the child its updates must go to: the live child
   * with() has made for its label set since, else itself, put back (value intact). With the family
   * full it is counted as dropped and lives on unrendered, like the overflow child.
   */
  revive(child: C): C {
    const live = this.series.get(child.key);
    if (live !== undefined) return live;
    child.retired = false;
    if (this.series.size >= this.maxSeries) {
      this.onDrop();
      return child;
    }
    this.series.set(child.key, child);
    child.paths.push(this.trie.set(child.labels, child));
    return child;
  }

  /** Retires retirable children not updated for `olderThanMs`; returns how many. */
  retireIdle(olderThanMs: number): number {
    const cutoff = now - olderThanMs;
    let retired = 0;
    for (const [key, child] of this.series) {
      if (child.updatedAt >= cutoff || !child.retirable()) continue;
      this.series.delete(key);
      for (const path of child.paths) this.trie.delete(path);
      child.paths.length = 0;
      child.retired = true;
      retired++;
    }
    return retired;
  }

  /** Appends HELP, TYPE and sample lines (no newlines); nothing when the family has no children. */
  render(out: string[]): void {
    if (this.series.size === 0) return;
    out.push(`# HELP ${this.name} ${escapeHelp(this.help)}`, `# TYPE ${this.name} ${this.kind}`);
    for (const child of this.series.values()) child.render(this.name, out);
  }
}
