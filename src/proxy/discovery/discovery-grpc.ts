/**
 * Discovery over the control plane's Destination API (proto/destination.proto): for each
 * authority in use, a `Get` stream (endpoints) and a `GetProfile` stream (per-service settings:
 * for now whether the authority's port is opaque), opened on first use, applying updates to a
 * Destination object that stays the same while the authority is in use (balancers hold it and see
 * every change).
 *
 * Fail static (DESIGN.md §5): when the control plane is unreachable or a stream breaks, the last
 * known endpoints and profile stay in place and keep serving; the stream is reopened after a
 * jittered exponential backoff (100 ms doubling to 10 s, reset once a message arrives). The first
 * message of every Get stream is the full state, which replaces whatever was known; every profile
 * message is a full profile.
 *
 * The first `resolve` of an authority waits at most `firstAnswerTimeoutMs` (1 s) for the first
 * endpoints and the first profile (so a server-first protocol on an opaque port is never held up
 * by detection); without endpoints (control plane down at start) it answers null and the request
 * is forwarded unmeshed, as for any authority the mesh does not know. The streams keep trying,
 * and later resolves return the Destination once it is known.
 *
 * An authority not resolved for `idleMs` (5 min) has its streams closed and is forgotten, unless a
 * request is waiting for one of its endpoints; the next resolve subscribes afresh (a new
 * Destination object, whose first messages are the full state again).
 */
import * as grpc from '@grpc/grpc-js';
import {
  type DestinationClient,
  type DestinationProfile,
  destinationApi,
  type Update,
  type WeightedAddr,
} from '../../../proto/destination.js';
import { parseHostPort } from '../../lib/addr.js';
import type { Logger } from '../../lib/log.js';
import { type BackoffOptions, backoffMs } from '../balance/failure-accrual.js';
import type { Discovery, Endpoint } from './discovery.js';
import { MutableDestination } from './mutable-destination.js';

export interface GrpcDiscoveryOptions {
  /** How long a first resolve waits for the control plane's first answer (default 1000 ms). */
  readonly firstAnswerTimeoutMs?: number;
  /** Reconnect backoff (default 100 ms → 10 s, jitter 0.5). */
  readonly backoff?: BackoffOptions;
  /** Sent as GetDestination.context_token (who asks). */
  readonly contextToken?: string;
  /** An authority not resolved for this long has its streams closed (default 300000 ms). */
  readonly idleMs?: number;
}

export const DEFAULT_RECONNECT_BACKOFF: BackoffOptions = Object.freeze({
  minBackoffMs: 100,
  maxBackoffMs: 10_000,
  jitter: 0.5,
});

export const DEFAULT_DESTINATION_IDLE_MS = 300_000;

/** The two streams of an authority. */
type StreamKind = 'endpoints' | 'profile';

/** One stream of a subscription, reopened after a backoff whenever it ends. */
interface StreamState {
  call: grpc.ClientReadableStream<unknown> | undefined;
  /** Reconnects since the last message. */
  attempt: number;
  timer: NodeJS.Timeout | undefined;
}

/** The state of one authority's subscription. */
interface Subscription {
  readonly dest: MutableDestination;
  /** Endpoints by address, as the Get stream built them. */
  readonly byAddr: Map<string, HintedEndpoint>;
  /** undefined until the first endpoints; then whether the mesh knows the authority. */
  known: boolean | undefined;
  /** The profile's opaque mark, once a profile arrived (it wins over the endpoints' hints). */
  profileOpaque: boolean | undefined;
  /** Resolves once both streams answered first, or at the first-answer deadline. */
  readonly firstAnswer: Promise<void>;
  /** Whether `firstAnswer` has resolved. */
  firstDone: boolean;
  /** Marks one stream's first answer (idempotent per kind). */
  readonly answered: (kind: StreamKind) => void;
  readonly streams: Record<StreamKind, StreamState>;
  /** performance.now() of the last resolve. */
  lastUsedMs: number;
  idleTimer: NodeJS.Timeout | undefined;
  /** Evicted or discovery closed: no stream reopens. */
  ended: boolean;
}

/** Discovery from the Destination service at `addr` (`host:port`). Connects lazily. */
export function newGrpcDiscovery(addr: string, log: Logger, options: GrpcDiscoveryOptions = {}): Discovery {
  const firstAnswerTimeoutMs = options.firstAnswerTimeoutMs ?? 1000;
  const backoff = options.backoff ?? DEFAULT_RECONNECT_BACKOFF;
  const idleMs = options.idleMs ?? DEFAULT_DESTINATION_IDLE_MS;
  const client: DestinationClient = new (destinationApi().Client)(addr, grpc.credentials.createInsecure(), {
    // Notice a control plane that vanished without closing (its host went away).
    'grpc.keepalive_time_ms': 10_000,
    'grpc.keepalive_timeout_ms': 5_000,
    // Let our own backoff decide when to try again; grpc-js's channel backoff would add to it.
    'grpc.initial_reconnect_backoff_ms': backoff.minBackoffMs,
    'grpc.max_reconnect_backoff_ms': backoff.maxBackoffMs,
  });
  const subs = new Map<string, Subscription>();
  let closed = false;

  function subscribe(authority: string): Subscription {
    let resolveFirst!: () => void;
    const firstAnswer = new Promise<void>((resolve) => {
      resolveFirst = () => {
        sub.firstDone = true;
        resolve();
      };
    });
    const waitingFor = new Set<StreamKind>(['endpoints', 'profile']);
    const newStream = (): StreamState => ({ call: undefined, attempt: 0, timer: undefined });
    const sub: Subscription = {
      dest: new MutableDestination(authority, false, []),
      byAddr: new Map(),
      known: undefined,
      profileOpaque: undefined,
      firstAnswer,
      firstDone: false,
      answered: (kind) => {
        waitingFor.delete(kind);
        if (waitingFor.size === 0) resolveFirst();
      },
      streams: { endpoints: newStream(), profile: newStream() },
      lastUsedMs: performance.now(),
      idleTimer: undefined,
      ended: false,
    };
    const deadline = setTimeout(resolveFirst, firstAnswerTimeoutMs);
    deadline.unref();
    void firstAnswer.then(() => clearTimeout(deadline));
    open(sub, 'endpoints');
    open(sub, 'profile');
    watchIdle(sub, idleMs);
    return sub;
  }

  function open(sub: Subscription, kind: StreamKind): void {
    const { authority } = sub.dest;
    const state = sub.streams[kind];
    const request = { authority, contextToken: options.contextToken ?? '' };
    const call: grpc.ClientReadableStream<unknown> =
      kind === 'endpoints' ? client.Get(request) : client.GetProfile(request);
    state.call = call;
    let first = true;
    call.on('data', (m: unknown) => {
      state.attempt = 0;
      if (kind === 'endpoints') applyUpdate(sub, m as Update, first);
      else applyProfile(sub, m as DestinationProfile);
      first = false;
      sub.answered(kind);
    });
    call.on('error', () => {}); // the status says it all
    call.on('status', (s: grpc.StatusObject) => {
      if (closed || sub.ended || state.call !== call) return;
      state.call = undefined;
      // A control plane without profiles must not hold first resolves until the deadline.
      if (kind === 'profile') sub.answered(kind);
      const delayMs = backoffMs(state.attempt++, backoff, Math.random);
      const fields = {
        authority,
        code: grpc.status[s.code] ?? s.code,
        details: s.details,
        retryInMs: Math.round(delayMs),
      };
      if (kind === 'endpoints') {
        log.warn('destination stream ended; keeping last known endpoints', {
          ...fields,
          endpoints: sub.dest.endpoints.length,
        });
      } else
        log.warn('profile stream ended; keeping last known profile', { ...fields, opaque: sub.dest.opaque });
      state.timer = setTimeout(() => {
        state.timer = undefined;
        if (!closed && !sub.ended) open(sub, kind);
      }, delayMs);
    });
  }

  /** Applies one Get message; the first of a stream replaces the whole state. */
  function applyUpdate(sub: Subscription, u: Update, first: boolean): void {
    if (first) sub.byAddr.clear();
    switch (u.update) {
      case 'add':
        for (const a of u.add.addrs) {
          const e = toEndpoint(a);
          if (e) sub.byAddr.set(e.addr, e);
          else log.warn('ignoring a bad endpoint address from the control plane', { addr: a.addr });
        }
        sub.known = true;
        break;
      case 'remove':
        for (const a of u.remove.addrs) sub.byAddr.delete(a.addr);
        break;
      case 'noEndpoints':
        sub.byAddr.clear();
        sub.known = u.noEndpoints.exists;
        break;
    }
    const endpoints = Object.freeze([...sub.byAddr.values()]);
    // Until a profile says, endpoints hinted opaque mark the service opaque (and it keeps that
    // mark while it has no endpoints).
    const hinted = endpoints.length > 0 ? endpoints.every((e) => e.opaque) : undefined;
    sub.dest.update({ endpoints, opaque: sub.profileOpaque ?? hinted });
    log.debug('destination updated', {
      authority: sub.dest.authority,
      update: u.update,
      endpoints: endpoints.length,
    });
  }

  function applyProfile(sub: Subscription, p: DestinationProfile): void {
    sub.profileOpaque = p.opaque;
    sub.dest.update({ opaque: p.opaque });
    log.debug('profile updated', { authority: sub.dest.authority, opaque: p.opaque });
  }

  /** Checks again in `delayMs` whether `sub` went unused for `idleMs`. */
  function watchIdle(sub: Subscription, delayMs: number): void {
    sub.idleTimer = setTimeout(() => {
      sub.idleTimer = undefined;
      if (closed || sub.ended) return;
      const unusedMs = performance.now() - sub.lastUsedMs;
      // A request waiting for an endpoint needs the updates: look again a full period later.
      if (sub.dest.watched) return watchIdle(sub, idleMs);
      if (unusedMs < idleMs) return watchIdle(sub, idleMs - unusedMs + 1);
      evict(sub);
      log.debug('destination idle; streams closed', {
        authority: sub.dest.authority,
        unusedMs: Math.round(unusedMs),
      });
    }, delayMs);
    sub.idleTimer.unref();
  }

  /** Closes `sub`'s streams; whoever still holds its Destination keeps its last state. */
  function stop(sub: Subscription): void {
    sub.ended = true;
    clearTimeout(sub.idleTimer);
    for (const state of Object.values(sub.streams)) {
      clearTimeout(state.timer);
      const call = state.call;
      state.call = undefined;
      call?.cancel();
    }
    sub.answered('endpoints');
    sub.answered('profile');
  }

  function evict(sub: Subscription): void {
    if (subs.get(sub.dest.authority) === sub) subs.delete(sub.dest.authority);
    stop(sub);
  }

  return {
    resolve(authority) {
      if (closed) return null;
      let sub = subs.get(authority);
      if (!sub) subs.set(authority, (sub = subscribe(authority)));
      sub.lastUsedMs = performance.now();
      const s = sub;
      const answer = () => (s.known ? s.dest : null);
      return s.firstDone ? answer() : s.firstAnswer.then(answer);
    },
    close() {
      if (closed) return;
      closed = true;
      for (const sub of subs.values()) stop(sub);
      subs.clear();
      client.close();
    },
  };
}

/** An endpoint that remembers whether its protocol hint was `opaque`. */
type HintedEndpoint = Endpoint & { readonly opaque: boolean };

/** The Endpoint of a WeightedAddr; null for an unparseable address. */
function toEndpoint(a: WeightedAddr): HintedEndpoint | null {
  let hp: { host: string; port: number };
  try {
    hp = parseHostPort(a.addr);
  } catch {
    return null;
  }
  return Object.freeze({
    addr: a.addr,
    host: hp.host,
    port: hp.port,
    meshed: a.protocolHint !== '',
    weight: a.weight,
    identity: a.identity === '' ? undefined : a.identity,
    labels: Object.freeze({ ...a.metricLabels }),
    opaque: a.protocolHint === 'opaque',
  });
}
