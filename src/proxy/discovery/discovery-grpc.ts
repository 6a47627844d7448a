/**
 * Discovery over the control plane's Destination API (proto/destination.proto): one `Get` stream
 * per authority, opened on first use and kept open, applying updates to a Destination object that
 * stays the same for the life of the proxy (balancers hold it and see every change).
 *
 * Fail static (DESIGN.md §5): when the control plane is unreachable or a stream breaks, the last
 * known endpoints stay in place and keep serving; the stream is reopened after a jittered
 * exponential backoff (100 ms doubling to 10 s, reset once a message arrives). The first message
 * of every stream is the full state, which replaces whatever was known.
 *
 * The first `resolve` of an authority waits at most `firstAnswerTimeoutMs` (1 s) for that first
 * message; without one (control plane down at start) it answers null and the request is
 * forwarded unmeshed, as for any authority the mesh does not know. The stream keeps trying, and
 * later resolves return the Destination once it is known.
 */
import * as grpc from '@grpc/grpc-js';
import {
  type DestinationClient,
  destinationApi,
  type Update,
  type WeightedAddr,
} from '../../../proto/destination.js';
import { parseHostPort } from '../../lib/addr.js';
import type { Logger } from '../../lib/log.js';
import { type BackoffOptions, backoffMs } from '../balance/failure-accrual.js';
import type { Discovery, Endpoint } from './discovery.js';

export interface GrpcDiscoveryOptions {
  /** How long a first resolve waits for the control plane's first answer (default 1000 ms). */
  readonly firstAnswerTimeoutMs?: number;
  /** Reconnect backoff (default 100 ms → 10 s, jitter 0.5). */
  readonly backoff?: BackoffOptions;
  /** Sent as GetDestination.context_token (who asks). */
  readonly contextToken?: string;
}

export const DEFAULT_RECONNECT_BACKOFF: BackoffOptions = Object.freeze({
  minBackoffMs: 100,
  maxBackoffMs: 10_000,
  jitter: 0.5,
});

interface MutableDestination {
  authority: string;
  opaque: boolean;
  endpoints: readonly Endpoint[];
}

/** The state of one authority's subscription. */
interface Subscription {
  readonly dest: MutableDestination;
  /** Endpoints by address, as the stream built them. */
  readonly byAddr: Map<string, HintedEndpoint>;
  /** undefined until the first answer; then whether the mesh knows the authority. */
  known: boolean | undefined;
  /** Resolves at the first answer or at the first-answer deadline. */
  readonly firstAnswer: Promise<void>;
  call: grpc.ClientReadableStream<Update> | undefined;
  /** Reconnects since the last message. */
  attempt: number;
  timer: NodeJS.Timeout | undefined;
}

/** Discovery from the Destination service at `addr` (`host:port`). Connects lazily. */
export function newGrpcDiscovery(addr: string, log: Logger, options: GrpcDiscoveryOptions = {}): Discovery {
  const firstAnswerTimeoutMs = options.firstAnswerTimeoutMs ?? 1000;
  const backoff = options.backoff ?? DEFAULT_RECONNECT_BACKOFF;
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
    let answered!: () => void;
    const firstAnswer = new Promise<void>((resolve) => (answered = resolve));
    const sub: Subscription = {
      dest: { authority, opaque: false, endpoints: [] },
      byAddr: new Map(),
      known: undefined,
      firstAnswer,
      call: undefined,
      attempt: 0,
      timer: undefined,
    };
    const deadline = setTimeout(answered, firstAnswerTimeoutMs);
    deadline.unref();
    void firstAnswer.then(() => clearTimeout(deadline));
    open(sub, answered);
    return sub;
  }

  function open(sub: Subscription, answered: () => void): void {
    const { authority } = sub.dest;
    const call = client.Get({ authority, contextToken: options.contextToken ?? '' });
    sub.call = call;
    let first = true;
    call.on('data', (u: Update) => {
      sub.attempt = 0;
      apply(sub, u, first);
      first = false;
      answered();
    });
    call.on('error', () => {}); // the status says it all
    call.on('status', (s: grpc.StatusObject) => {
      if (closed || sub.call !== call) return;
      sub.call = undefined;
      const delayMs = backoffMs(sub.attempt++, backoff, Math.random);
      log.warn('destination stream ended; keeping last known endpoints', {
        authority,
        code: grpc.status[s.code] ?? s.code,
        details: s.details,
        retryInMs: Math.round(delayMs),
        endpoints: sub.dest.endpoints.length,
      });
      sub.timer = setTimeout(() => {
        sub.timer = undefined;
        if (!closed) open(sub, answered);
      }, delayMs);
    });
  }

  /** Applies one message; the first of a stream replaces the whole state. */
  function apply(sub: Subscription, u: Update, first: boolean): void {
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
    // An opaque service keeps that mark while it has no endpoints (profiles will carry it later).
    if (endpoints.length > 0) sub.dest.opaque = endpoints.every((e) => e.opaque);
    sub.dest.endpoints = endpoints;
    log.debug('destination updated', {
      authority: sub.dest.authority,
      update: u.update,
      endpoints: endpoints.length,
    });
  }

  return {
    resolve(authority) {
      if (closed) return null;
      let sub = subs.get(authority);
      if (!sub) subs.set(authority, (sub = subscribe(authority)));
      const s = sub;
      const answer = () => (s.known ? s.dest : null);
      return s.known === undefined ? s.firstAnswer.then(answer) : answer();
    },
    close() {
      if (closed) return;
      closed = true;
      for (const sub of subs.values()) {
        clearTimeout(sub.timer);
        sub.call?.cancel();
      }
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
