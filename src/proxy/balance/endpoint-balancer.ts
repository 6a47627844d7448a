/**
 * The balancer of one destination's endpoints: P2C over latency-EWMA cost, minus the endpoints in a
 * failure-accrual penalty box (DESIGN.md §5), and the send layer that feeds it outcomes.
 */
import { ConnectError, ConnectTimeoutError, PeerError } from '../../lib/errors.js';
import type { Endpoint } from '../discovery/discovery.js';
import type { Send, SendHooks } from '../http/exchange.js';
import type { Headers } from '../http/headers.js';
import {
  DEFAULT_DECAY_MS,
  DEFAULT_RTT_MS,
  DEFAULT_SMOOTHING_MS,
  LatencyEwma,
  type LatencyEwmaOptions,
  pickP2c,
} from './balance-p2c-ewma.js';
import {
  DEFAULT_FAILURE_ACCRUAL,
  type FailureAccrualOptions,
  type Outcome,
  PenaltyBox,
} from './failure-accrual.js';

export interface EndpointBalancerOptions {
  readonly ewma: LatencyEwmaOptions;
  readonly accrual: FailureAccrualOptions;
  /** Milliseconds on a monotonic clock (tests inject a fake one). */
  readonly now: () => number;
  /** Uniform in [0, 1) (tests inject a seeded one). */
  readonly random: () => number;
  /**
   * Called synchronously when a probe's outcome is known (the endpoint is back, or its box
   * reopened with a later retry time): whoever waits for an endpoint looks again.
   */
  readonly onProbeSettled?: () => void;
  /**
   * Runs `fn` once the current turn of the event loop is over (tests inject a manual one):
   * reservations made by `pick` that no `start` took over are released then.
   */
  readonly defer: (fn: () => void) => void;
}

const DEFAULTS: EndpointBalancerOptions = Object.freeze({
  ewma: Object.freeze({
    defaultRttMs: DEFAULT_RTT_MS,
    decayMs: DEFAULT_DECAY_MS,
    smoothingMs: DEFAULT_SMOOTHING_MS,
  }),
  accrual: DEFAULT_FAILURE_ACCRUAL,
  now: () => performance.now(),
  random: Math.random,
  defer: (fn: () => void) => void setImmediate(fn),
});

/** One request in flight to an endpoint, as `EndpointBalancer.start` hands it out. */
export interface EndpointRequest {
  /** The response head arrived: records the latency to it and a success. */
  responded(): void;
  /** The endpoint failed the request (no response from it): records a failure. */
  failed(): void;
  /** No connection to the endpoint could be made: it goes into the penalty box at once. */
  connectFailed(): void;
  /**
   * The request no longer occupies the endpoint (response body closed, or the send failed).
   * One that ends with neither `responded` nor `failed` (its client or a timeout cancelled it)
   * counts as neither success nor failure, but its elapsed time is a latency sample (a lower
   * bound: a hung endpoint must look slow). Only the first of each call counts.
   */
  end(): void;
}

interface EndpointState {
  ewma: LatencyEwma;
  readonly box: PenaltyBox;
  /** Requests started and not ended, plus `reserved`: what the cost multiplies. */
  pending: number;
  /** Picks in this turn of the event loop that no `start` has taken over yet. */
  reserved: number;
}

/**
 * Per-destination balancer. State is keyed by endpoint address and dropped for addresses that
 * leave the list passed to `pick`, so memory is bounded by the current endpoints.
 */
export class EndpointBalancer {
  readonly #opts: EndpointBalancerOptions;
  readonly #states = new Map<string, EndpointState>();
  #lastList: readonly Endpoint[] | undefined;
  /** States holding reservations, released together at the end of the turn. */
  readonly #reservedStates: EndpointState[] = [];

  constructor(opts: Partial<EndpointBalancerOptions> = {}) {
    this.#opts = { ...DEFAULTS, ...opts };
  }

  /**
   * Chooses the endpoint for one request, or undefined when none is usable (no endpoint with a
   * positive weight outside the penalty box): the caller then waits for one with a deadline
   * (BalanceQueue), as Linkerd does, rather than send to an endpoint known to fail. An endpoint
   * whose backoff has run out gets the probe: the first pick after the backoff returns it, and no
   * other pick does until the probe's outcome is known. `except` (an endpoint that just failed a
   * request) is never chosen.
   *
   * The endpoint returned counts as pending at once (a reservation): the caller's `start(ep)`
   * comes a few awaits later, and picks made before it (the queue handing endpoints to several
   * waiters in one loop, requests that arrived together) must not all see it idle and herd onto
   * it. `start(ep)` takes the reservation over; one that no `start` takes over by the end of the
   * current turn of the event loop (the request was abandoned, or the caller never starts one, as
   * for upgrades) is released then, so no path can leak a pending count.
   */
  pick(endpoints: readonly Endpoint[], except?: Endpoint): Endpoint | undefined {
    if (endpoints !== this.#lastList) this.#retainOnly(endpoints);
    const nowMs = this.#opts.now();
    const candidates: Endpoint[] = [];
    for (const ep of endpoints) {
      if (!(ep.weight > 0) || ep.addr === except?.addr) continue;
      const state = this.#state(ep.addr);
      const availability = state.box.availability(nowMs);
      if (availability === 'probe') {
        state.box.claimProbe(nowMs);
        this.#reserve(state);
        return ep;
      }
      if (availability === 'ready') candidates.push(ep);
    }
    const chosen = pickP2c(candidates, (ep) => this.#cost(ep, nowMs), this.#opts.random);
    if (chosen) this.#reserve(this.#state(chosen.addr));
    return chosen;
  }

  /**
   * The earliest time at which an endpoint now unavailable to `pick` may become available by
   * time alone (a backoff running out, an unused probe claim lapsing); undefined when none will
   * (no endpoints, or only a probe in flight, whose outcome calls `onProbeSettled`).
   */
  nextAvailableAtMs(endpoints: readonly Endpoint[]): number | undefined {
    let at: number | undefined;
    for (const ep of endpoints) {
      if (!(ep.weight > 0)) continue;
      const t = this.#states.get(ep.addr)?.box.availableAtMs();
      if (t !== undefined && (at === undefined || t < at)) at = t;
    }
    return at;
  }

  /**
   * Counts a request to `ep` as pending until `end()` (taking over a reservation `pick` made for
   * `ep` in this turn, if any); see EndpointRequest.
   */
  start(ep: Endpoint): EndpointRequest {
    // An endpoint that left discovery since the pick is forgotten again at the next list change.
    const state = this.#state(ep.addr);
    const startMs = this.#opts.now();
    const isProbe = state.box.started();
    if (state.reserved > 0) state.reserved--;
    else state.pending++;
    let recorded = false;
    let ended = false;
    const record = (outcome: Outcome) => {
      if (recorded) return;
      recorded = true;
      const nowMs = this.#opts.now();
      const elapsedMs = nowMs - startMs;
      // A fast failure (ECONNREFUSED in microseconds) must not make the endpoint look fast.
      const sampleMs =
        outcome === 'failure' || outcome === 'connect-failure'
          ? Math.max(elapsedMs, this.#opts.ewma.defaultRttMs)
          : elapsedMs;
      if (state.box.record(outcome, isProbe, nowMs)) {
        // Back from the box: its latency history predates the outage; the probe starts it afresh.
        state.ewma = new LatencyEwma(this.#opts.ewma, nowMs);
      }
      state.ewma.observe(sampleMs, nowMs);
      if (isProbe) this.#opts.onProbeSettled?.();
    };
    return {
      responded: () => record('success'),
      failed: () => record('failure'),
      connectFailed: () => record('connect-failure'),
      end: () => {
        if (ended) return;
        ended = true;
        record('cancelled');
        state.pending--;
      },
    };
  }

  /**
   * `estimate * (pending + 1) / weight`. An endpoint never measured and idle costs 0, so the
   * next request measures it (a new endpoint is not starved while its default decays); with a
   * request pending it costs the default RTT per request like any other.
   */
  #cost(ep: Endpoint, nowMs: number): number {
    const state = this.#state(ep.addr);
    if (!state.ewma.sampled && state.pending === 0) return 0;
    return (state.ewma.read(nowMs) * (state.pending + 1)) / ep.weight;
  }

  #reserve(state: EndpointState): void {
    state.pending++;
    if (state.reserved++ > 0) return;
    if (this.#reservedStates.push(state) === 1) this.#opts.defer(this.#release);
  }

  /** Releases the reservations no `start` took over (bound: it is the deferred callback). */
  readonly #release = (): void => {
    for (const state of this.#reservedStates) {
      state.pending -= state.reserved;
      state.reserved = 0;
    }
    this.#reservedStates.length = 0;
  };

  #state(addr: string): EndpointState {
    let state = this.#states.get(addr);
    if (!state) this.#states.set(addr, (state = this.#newState()));
    return state;
  }

  #newState(): EndpointState {
    return {
      ewma: new LatencyEwma(this.#opts.ewma, this.#opts.now()),
      box: new PenaltyBox(this.#opts.accrual, this.#opts.random),
      pending: 0,
      reserved: 0,
    };
  }

  #retainOnly(endpoints: readonly Endpoint[]): void {
    this.#lastList = endpoints;
    const keep = new Set(endpoints.map((ep) => ep.addr));
    for (const addr of this.#states.keys()) if (!keep.has(addr)) this.#states.delete(addr);
  }
}

/**
 * Whether a send error means the endpoint itself failed: it could not be reached or broke the
 * exchange before answering. An app's 5xx is a response, not an endpoint failure.
 */
export function isEndpointFailure(err: unknown): boolean {
  return isConnectFailure(err) || err instanceof PeerError;
}

/** Whether a send error means no connection to the endpoint was made: nothing was sent. */
export function isConnectFailure(err: unknown): boolean {
  return err instanceof ConnectError || err instanceof ConnectTimeoutError;
}

/**
 * The balance layer of one request: wraps `send` to `ep` so that `balancer` sees it start,
 * its latency to the response head, its failure, and its end (when the response body closes).
 * A request cancelled by its client or by a timeout is not the endpoint's failure.
 */
export function balancedSend(balancer: EndpointBalancer, ep: Endpoint, send: Send): Send {
  return async (head, body, hooks) => {
    const request = balancer.start(ep);
    const tracked = new CancelTrackingHooks(hooks);
    try {
      const res = await send(head, body, tracked);
      request.responded();
      res.body.once('close', request.end);
      return res;
    } catch (err) {
      if (!tracked.cancelled && isConnectFailure(err)) request.connectFailed();
      else if (!tracked.cancelled && isEndpointFailure(err)) request.failed();
      request.end();
      throw err;
    }
  };
}

/** The exchange's hooks, noting whether the request was cancelled. A class: no closures per request. */
class CancelTrackingHooks implements SendHooks {
  cancelled = false;
  readonly #inner: SendHooks;

  constructor(inner: SendHooks) {
    this.#inner = inner;
  }

  onInformational(status: number, headers: Headers): void {
    this.#inner.onInformational(status, headers);
  }

  requestTrailers(): Headers | undefined {
    return this.#inner.requestTrailers();
  }

  onCancel(cancel: () => void): void {
    this.#inner.onCancel(() => {
      this.cancelled = true;
      cancel();
    });
  }
}
