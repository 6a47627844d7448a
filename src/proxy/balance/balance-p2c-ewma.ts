/**
 * Latency-aware selection (DESIGN.md §5): an EWMA estimate of each endpoint's latency and
 * power-of-two-choices over `estimate * (pending + 1) / weight`, after tower's `PeakEwma` as
 * linkerd2-proxy uses it, with one change argued below. Pure arithmetic on an injected clock: no
 * timers, no I/O.
 */

/** Latency assumed for an endpoint with no sample yet (linkerd2-proxy's default). */
export const DEFAULT_RTT_MS = 30;
/**
 * Time constant of the decay toward zero of an estimate that no sample refreshes: how long an
 * endpoint avoided for looking slower goes before it is tried again. Tower and Finagle use 10 s,
 * but there the peak rule also mixes traffic (every response above the estimate makes the
 * busiest endpoint look worse); here this decay is the only way back, and with 10 s three equal
 * endpoints at one request at a time split traffic up to 1:2.6 over 15 s (the simulation in
 * endpoint-balancer.test.ts), against ±22% with 2 s. A 10 ms endpoint beside 1 ms ones is then
 * tried again every ~2.5 s: 0.02% of requests at 500 req/s.
 */
export const DEFAULT_DECAY_MS = 2_000;
/** Time constant of the average over samples: see LatencyEwma. */
export const DEFAULT_SMOOTHING_MS = 250;

export interface LatencyEwmaOptions {
  readonly defaultRttMs: number;
  /** Decay toward zero while no sample comes: a sample's weight after `t` ms is `exp(-t / decayMs)`. */
  readonly decayMs: number;
  /** Averaging of samples: a sample `t` ms after the previous one has weight `1 - exp(-t / smoothingMs)`. */
  readonly smoothingMs: number;
}

/**
 * One endpoint's latency estimate: an average of its samples weighted by the time between them
 * (time constant `smoothingMs`), which decays toward zero (time constant `decayMs`) while no
 * sample comes, so an endpoint that stopped being picked because it looked slow is tried again.
 *
 * Why not tower's peak rule (a sample above the estimate replaces it, a lower one moves it by
 * `exp(-t / 10 s)`): in tower the estimate is then the decaying maximum of the last ~10 s of
 * samples. That suits a proxy whose measurements jitter by microseconds; ours include our own
 * event loop, GC pauses, timer granularity and the host's scheduler, which put 5-25 ms outliers
 * on any endpoint several times a second. Measured (bench/balance-scenario.sh, 1/1/10 ms
 * endpoints): with the peak rule the 1 ms endpoints' estimates sat at 7-21 ms for the whole run,
 * level with the 10 ms one, and P2C degenerated into least-pending (7-8% of requests to the slow
 * endpoint). Weighting by time instead of by count keeps what tower's decay gets right: a burst
 * of responses handled together after a pause of ours (all carrying that pause) counts about as
 * much as one, and a sample after a long silence replaces a stale estimate almost whole. With
 * 250 ms, a lone 20 ms outlier on a 1 ms endpoint sampled every 4 ms moves it by under 1 ms,
 * while an endpoint turning from 1 to 10 ms doubles its estimate within ~30 ms of samples and is
 * avoided at once anyway by its pending requests piling up.
 *
 * The first real sample replaces the default instead of being averaged into it.
 */
export class LatencyEwma {
  readonly #opts: LatencyEwmaOptions;
  #rttMs: number;
  /** When the decay toward zero was last applied. */
  #decayedAtMs: number;
  /** When the last sample was folded in. */
  #observedAtMs: number;
  #sampled = false;

  constructor(opts: LatencyEwmaOptions, nowMs: number) {
    this.#opts = opts;
    this.#rttMs = opts.defaultRttMs;
    this.#decayedAtMs = nowMs;
    this.#observedAtMs = nowMs;
  }

  /** Whether a real sample has been observed (else the estimate derives from the default). */
  get sampled(): boolean {
    return this.#sampled;
  }

  /** The estimate at `nowMs`, decayed toward zero since the last read or sample. */
  read(nowMs: number): number {
    if (nowMs > this.#decayedAtMs) {
      this.#rttMs *= Math.exp(-(nowMs - this.#decayedAtMs) / this.#opts.decayMs);
      this.#decayedAtMs = nowMs;
    }
    return this.#rttMs;
  }

  /** Folds a latency sample taken at `nowMs` into the estimate. */
  observe(rttMs: number, nowMs: number): void {
    const estimate = this.read(nowMs);
    if (this.#sampled) {
      const weight = 1 - Math.exp(-Math.max(0, nowMs - this.#observedAtMs) / this.#opts.smoothingMs);
      this.#rttMs = estimate + (rttMs - estimate) * weight;
    } else {
      this.#rttMs = rttMs;
      this.#sampled = true;
    }
    this.#observedAtMs = Math.max(this.#observedAtMs, nowMs);
  }
}

/**
 * Power of two choices: two distinct candidates drawn with `random` (uniform in [0, 1)), the
 * cheaper one wins (the first drawn on a tie). `cost` is called for those two only. Undefined
 * when there is no candidate; the only one when there is one.
 */
export function pickP2c<T>(
  candidates: readonly T[],
  cost: (candidate: T) => number,
  random: () => number,
): T | undefined {
  const n = candidates.length;
  if (n <= 1) return candidates[0];
  const i = Math.floor(random() * n);
  let j = Math.floor(random() * (n - 1));
  if (j >= i) j++;
  const a = candidates[i];
  const b = candidates[j];
  return cost(b) < cost(a) ? b : a;
}
