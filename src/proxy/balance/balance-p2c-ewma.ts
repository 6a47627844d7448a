/**
 * Latency-aware selection (DESIGN.md §5): a peak-EWMA estimate of each endpoint's latency and
 * power-of-two-choices over `estimate * (pending + 1) / weight`, after tower's `PeakEwma` as
 * linkerd2-proxy uses it. Pure arithmetic on an injected clock: no timers, no I/O.
 */

/** Latency assumed for an endpoint with no sample yet (linkerd2-proxy's default). */
export const DEFAULT_RTT_MS = 30;
/** Time constant of the decay: a sample's weight after `t` ms is `exp(-t / decayMs)`. */
export const DEFAULT_DECAY_MS = 10_000;

export interface PeakEwmaOptions {
  readonly defaultRttMs: number;
  readonly decayMs: number;
}

/**
 * One endpoint's latency estimate, peak-sensitive: a sample above the estimate replaces it at
 * once (an endpoint turning slow is avoided right away); a sample below moves it there
 * exponentially by the time elapsed since the last update, not by the number of samples.
 *
 * Reading the cost also decays the estimate toward zero by the time since the last update (as
 * tower does), so an endpoint that stopped being picked because it looked slow gets tried again.
 * Unlike tower, the first real sample replaces the default instead of being blended into it:
 * with a 10 s decay the default would otherwise hide real measurements for seconds.
 */
export class PeakEwma {
  readonly #opts: PeakEwmaOptions;
  #rttMs: number;
  #stampMs: number;
  #sampled = false;

  constructor(opts: PeakEwmaOptions, nowMs: number) {
    this.#opts = opts;
    this.#rttMs = opts.defaultRttMs;
    this.#stampMs = nowMs;
  }

  /** Whether a real sample has been observed (else the estimate derives from the default). */
  get sampled(): boolean {
    return this.#sampled;
  }

  /** The estimate at `nowMs`, decayed toward zero since the last update (which it becomes). */
  read(nowMs: number): number {
    this.#rttMs *= this.#decay(nowMs);
    this.#stampMs = Math.max(this.#stampMs, nowMs);
    return this.#rttMs;
  }

  /** Folds a latency sample taken at `nowMs` into the estimate. */
  observe(rttMs: number, nowMs: number): void {
    if (!this.#sampled || rttMs > this.#rttMs) {
      this.#rttMs = rttMs;
    } else {
      const decay = this.#decay(nowMs);
      this.#rttMs = this.#rttMs * decay + rttMs * (1 - decay);
    }
    this.#sampled = true;
    this.#stampMs = Math.max(this.#stampMs, nowMs);
  }

  #decay(nowMs: number): number {
    return Math.exp(-Math.max(0, nowMs - this.#stampMs) / this.#opts.decayMs);
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
