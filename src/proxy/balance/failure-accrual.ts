/**
 * Failure accrual (DESIGN.md §5), as Linkerd's consecutive-failures policy: after N failures in a
 * row an endpoint goes into a penalty box for a jittered, exponentially growing backoff; then
 * exactly one probe request may go through, whose outcome closes the box or reopens it with the
 * next backoff. Pure state on an injected clock: no timers.
 *
 * A connection that could not be established opens the box at once: the endpoint is known to be
 * unreachable (its listener is gone or never answers), and every request sent there meanwhile
 * would fail the same way. Linkerd likewise stops offering an endpoint to its balancer while it
 * reconnects. Counting such failures toward N instead let P2C pick the dead endpoint again and
 * again: a failure is recorded as a default-RTT latency sample, cheaper than a healthy endpoint
 * that the latency EWMA remembers as slow.
 */

export interface BackoffOptions {
  /** The first backoff (before jitter). */
  readonly minBackoffMs: number;
  /** No backoff exceeds this, jitter included. */
  readonly maxBackoffMs: number;
  /** Relative jitter: a backoff of `b` becomes uniform in `[b * (1 - jitter), b * (1 + jitter)]`. */
  readonly jitter: number;
}

export interface FailureAccrualOptions extends BackoffOptions {
  /** Failures in a row that open the box. */
  readonly consecutiveFailures: number;
  /**
   * How long a probe picked but never started (a connection-level use of the endpoint, which
   * reports no outcome) holds the probe slot before another request may probe.
   */
  readonly probeClaimMs: number;
}

export const DEFAULT_FAILURE_ACCRUAL: FailureAccrualOptions = Object.freeze({
  consecutiveFailures: 7,
  minBackoffMs: 1_000,
  maxBackoffMs: 60_000,
  jitter: 0.5,
  probeClaimMs: 1_000,
});

/**
 * The backoff before retry number `attempt` (0-based): `min * 2^attempt`, capped at `max`, with
 * jitter drawn from `random` (uniform in [0, 1)), and never above `max`.
 */
export function backoffMs(attempt: number, opts: BackoffOptions, random: () => number): number {
  const base = Math.min(opts.maxBackoffMs, opts.minBackoffMs * 2 ** Math.min(attempt, 52));
  return Math.min(opts.maxBackoffMs, base * (1 + opts.jitter * (2 * random() - 1)));
}

/** Whether a pick may use the endpoint: freely, only as the probe, or not at all. */
export type Availability = 'ready' | 'probe' | 'blocked';

/**
 * What one request to the endpoint came to. `cancelled`: its client or a timeout ended it;
 * `connect-failure`: no connection could be made (nothing was sent).
 */
export type Outcome = 'success' | 'failure' | 'connect-failure' | 'cancelled';

/** One endpoint's penalty box. */
export class PenaltyBox {
  readonly #opts: FailureAccrualOptions;
  readonly #random: () => number;
  #failures = 0;
  /** Times the box opened since it was last closed; the next backoff's exponent. */
  #openings = 0;
  /** When the box is open: the time from which a probe may go. */
  #retryAtMs: number | undefined;
  #probe: 'none' | 'claimed' | 'in-flight' = 'none';
  #claimedAtMs = 0;

  constructor(opts: FailureAccrualOptions, random: () => number) {
    this.#opts = opts;
    this.#random = random;
  }

  /** When the box is open: the time from which one probe may go; undefined when closed. */
  get retryAtMs(): number | undefined {
    return this.#retryAtMs;
  }

  /**
   * When an unavailable endpoint may next be picked by time alone: the end of the backoff, or
   * the lapse of an unused probe claim; undefined when the box is closed or a probe is in flight.
   */
  availableAtMs(): number | undefined {
    if (this.#retryAtMs === undefined) return undefined;
    if (this.#probe === 'none') return this.#retryAtMs;
    if (this.#probe === 'claimed')
      return Math.max(this.#retryAtMs, this.#claimedAtMs + this.#opts.probeClaimMs);
    return undefined;
  }

  availability(nowMs: number): Availability {
    if (this.#retryAtMs === undefined) return 'ready';
    if (nowMs < this.#retryAtMs) return 'blocked';
    if (this.#probe === 'claimed' && nowMs - this.#claimedAtMs >= this.#opts.probeClaimMs)
      this.#probe = 'none';
    return this.#probe === 'none' ? 'probe' : 'blocked';
  }

  /** The pick chose this endpoint for its probe (call only when `availability` said 'probe'). */
  claimProbe(nowMs: number): void {
    this.#probe = 'claimed';
    this.#claimedAtMs = nowMs;
  }

  /** A request to the endpoint starts; true when it is the probe (whose outcome decides the box). */
  started(): boolean {
    if (this.#probe !== 'claimed') return false;
    this.#probe = 'in-flight';
    return true;
  }

  /**
   * Records a request's outcome. While the box is open only the probe's outcome counts: success
   * closes the box, failure reopens it with the next backoff, cancellation frees the probe slot.
   * While it is closed, a connect failure opens it at once. Returns true when this closed the box.
   */
  record(outcome: Outcome, isProbe: boolean, nowMs: number): boolean {
    if (this.#retryAtMs !== undefined) {
      if (!isProbe || this.#probe !== 'in-flight') return false;
      if (outcome === 'cancelled') {
        this.#probe = 'none';
        return false;
      }
      if (outcome === 'failure' || outcome === 'connect-failure') {
        this.#open(nowMs);
        return false;
      }
      this.#retryAtMs = undefined;
      this.#probe = 'none';
      this.#openings = 0;
      this.#failures = 0;
      return true;
    }
    if (outcome === 'success') this.#failures = 0;
    else if (outcome === 'connect-failure') this.#open(nowMs);
    else if (outcome === 'failure' && ++this.#failures >= this.#opts.consecutiveFailures) this.#open(nowMs);
    return false;
  }

  #open(nowMs: number): void {
    this.#retryAtMs = nowMs + backoffMs(this.#openings, this.#opts, this.#random);
    this.#openings++;
    this.#probe = 'none';
    this.#failures = 0;
  }
}
