/**
 * One HTTP request/response exchange through the proxy, independent of the HTTP versions on
 * either side: a Downstream (the client's side, HTTP/1 or HTTP/2) and an upstream `send`
 * (HTTP/1 or HTTP/2 to the next hop). `runExchange` is the rescue edge of DESIGN.md §4: inner
 * steps throw WeftErrors and it alone turns them into responses and metrics.
 */
import type { Readable } from 'node:stream';
import { asWeftError, ClientCancelledError, ResponseTimeoutError, type WeftError } from '../../lib/errors.js';
import type { HttpSeries } from '../metrics/proxy-metrics.js';
import type { Headers } from './headers.js';

/** A request as the proxy forwards it: end-to-end headers only. */
export interface RequestHead {
  readonly method: string;
  readonly scheme: string;
  /** What the client asked for (Host or :authority), unnormalized. */
  readonly authority: string;
  readonly path: string;
  readonly headers: Headers;
  readonly origProto: 'HTTP/1.0' | 'HTTP/1.1' | 'HTTP/2';
  readonly hasBody: boolean;
  readonly grpc: boolean;
  /** Milliseconds to response headers (0: none). */
  readonly timeoutMs: number;
}

/**
 * Whether a request's body can end with trailers, which is when the proxy listens for them and
 * the next hop waits for them (a write of its own per request on HTTP/2): not gRPC (its requests
 * never have any), nor an HTTP/1 body of known length (only chunked coding carries trailers).
 */
export function requestMayHaveTrailers(head: RequestHead): boolean {
  return (
    head.hasBody &&
    !head.grpc &&
    (head.origProto === 'HTTP/2' || head.headers['content-length'] === undefined)
  );
}

/** A response coming back from the next hop. `body` ends after the last byte. */
export interface UpstreamResponse {
  readonly status: number;
  readonly headers: Headers;
  readonly body: Readable;
  /** The trailers, known once `body` has ended (undefined when there were none). */
  trailers(): Headers | undefined;
}

export interface SendHooks {
  /**
   * The next hop sent an informational (1xx) response before its final one: `100 Continue`, or
   * one with fields, such as `103 Early Hints` (`headers`: its end-to-end fields). Never 101.
   */
  onInformational(status: number, headers: Headers): void;
  /** The request's trailers, known once its body has ended (undefined: none). */
  requestTrailers(): Headers | undefined;
  /**
   * Registers how to cancel the request upstream. `cancel` runs at most once, when the client
   * goes away or the exchange fails or times out before the response is complete; right away if
   * that already happened. (A plain callback: AbortController costs too much per request.)
   */
  onCancel(cancel: () => void): void;
}

/** Sends one request to the next hop; resolves on the response head, rejects with a WeftError. */
export type Send = (head: RequestHead, body: Readable | null, hooks: SendHooks) => Promise<UpstreamResponse>;

/** Where a request goes: metric series for it, and how to send it. */
export interface Routed {
  readonly series: HttpSeries;
  readonly send: Send;
}

/** The client's side of one exchange. */
export interface Downstream {
  readonly head: RequestHead;
  /** The request body, or null when the request has none. */
  readonly body: Readable | null;
  /** Passes an informational (1xx) response on, where the client's protocol can carry it. */
  sendInformational(status: number, headers: Headers): void;
  /** The request's end-to-end trailers, once `body` has ended (undefined: none). */
  trailers(): Headers | undefined;
  /** Writes the response through to the client; resolves when the client has all of it. */
  forward(res: UpstreamResponse): Promise<void>;
  /** Answers with a proxy-made error, or resets the exchange if the response already started. */
  fail(err: WeftError): void;
  /** `cb` fires if the client goes away before the response is complete. */
  onAbort(cb: () => void): void;
}

/**
 * Routes and forwards one exchange, enforcing the response timeout and recording the request,
 * response, status and latency in metrics. Never rejects. `peer` is passed on to `route` (the
 * client of the connection, when the stack knows it), so callers need no closure per request.
 */
export async function runExchange<P>(
  down: Downstream,
  route: (head: RequestHead, peer?: P) => Routed | Promise<Routed>,
  fallbackSeries: () => HttpSeries,
  peer?: P,
): Promise<void> {
  const startMs = performance.now();
  let series: HttpSeries | undefined;
  let up: UpstreamResponse | undefined;
  const abort = new Canceller(down);
  try {
    const r = route(down.head, peer);
    // A route known at once (inbound) costs no extra turn of the microtask queue.
    const routed = r instanceof Promise ? await r : r;
    series = routed.series;
    series.request.inc();
    down.onAbort(abort.abortNow);
    const sending = routed.send(down.head, down.body, abort);
    up = down.head.timeoutMs > 0 ? await withTimeout(sending, down.head.timeoutMs, abort) : await sending;
    await down.forward(up);
    const grpcStatus = headerValue(up.trailers()?.['grpc-status']) ?? headerValue(up.headers['grpc-status']);
    series.response(up.status, grpcStatus, undefined).observe(performance.now() - startMs);
  } catch (e) {
    // Once the client is gone, the send's own failure (a reset stream, "peer failed") is only the
    // echo of our cancelling it: count the cancellation, not a failure of the next hop.
    const err = abort.clientGone ? new ClientCancelledError() : asWeftError(e);
    if (!series) {
      series = fallbackSeries();
      series.request.inc();
    }
    abort.abort();
    // A request body no attempt will read any more (the HTTP/1 client pauses it between
    // attempts): drained, so an HTTP/1 client's next request on the connection is read and an
    // HTTP/2 stream's flow-control window is not left taken.
    if (down.body && !down.body.readableEnded) down.body.resume();
    down.fail(err);
    const status = up ? up.status : err.httpStatus;
    series
      .response(status, down.head.grpc && !up ? grpcCodeFor(err) : undefined, err.reason)
      .observe(performance.now() - startMs);
  }
}

/** `p`, or ResponseTimeoutError (and the send cancelled) after `ms`; the timer never outlives `p`. */
function withTimeout<T>(p: Promise<T>, ms: number, abort: Canceller): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => {
      reject(new ResponseTimeoutError(ms));
      abort.abort();
    }, ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}

/**
 * The hooks one send gets: 1xx responses go to the client; the registered cancel function runs
 * once, now or as soon as one is registered. One object per exchange, no closures.
 */
class Canceller implements SendHooks {
  readonly #down: Downstream;
  #cancel: (() => void) | undefined;
  #aborted = false;
  /** The client went away before the response was complete (Downstream.onAbort). */
  clientGone = false;
  /** For `Downstream.onAbort`: the client went away; cancel the send. */
  readonly abortNow = (): void => {
    if (!this.#aborted) this.clientGone = true;
    this.abort();
  };

  constructor(down: Downstream) {
    this.#down = down;
  }

  onInformational(status: number, headers: Headers): void {
    this.#down.sendInformational(status, headers);
  }

  requestTrailers(): Headers | undefined {
    return this.#down.trailers();
  }

  onCancel(cancel: () => void): void {
    if (this.#aborted) cancel();
    else this.#cancel = cancel;
  }

  abort(): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#cancel?.();
    this.#cancel = undefined;
  }
}

function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/** The gRPC status a proxy-made error maps to (https://grpc.github.io/grpc/core/md_doc_statuscodes.html). */
export function grpcCodeFor(err: WeftError): string {
  switch (err.httpStatus) {
    case 499:
      return '1'; // CANCELLED
    case 504:
      return '4'; // DEADLINE_EXCEEDED
    case 403:
      return '7'; // PERMISSION_DENIED
    case 400:
    case 431:
      return '13'; // INTERNAL: the request could not be carried
    default:
      return '14'; // UNAVAILABLE
  }
}
