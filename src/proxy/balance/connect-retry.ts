/**
 * One more attempt on another endpoint when the first could not be connected to. Nothing reached
 * the endpoint (ConnectError, ConnectTimeoutError), so sending again is safe for any method as
 * long as no byte of the request body was consumed yet. At most one retry: a second endpoint that
 * cannot be reached either means the destination itself is in trouble, and the client hears so.
 */
import type { Readable } from 'node:stream';
import type { Counter } from '../../lib/metrics/registry.js';
import type { RequestHead, Routed, Send } from '../http/exchange.js';
import type { HttpSeries } from '../metrics/proxy-metrics.js';
import { isConnectFailure } from './endpoint-balancer.js';

/** Where one attempt goes: its endpoint's metric series and (balanced) send. */
export interface Attempt {
  readonly series: HttpSeries;
  readonly send: Send;
}

/**
 * A Routed for `first` that, if `first` fails to connect and the body is still unread, sends
 * once more through the attempt `next()` returns (undefined: no other endpoint, the error
 * stands). The response is recorded in the series of the endpoint that answered; the request
 * was counted where it was first sent. `onRetry` counts the retry.
 */
export function connectRetryRoute(
  first: Attempt,
  next: () => Attempt | undefined,
  onRetry: () => void,
): Routed {
  const series = new FollowingSeries(first.series);
  return {
    series,
    send: (head, body, hooks) =>
      first.send(head, body, hooks).catch((err: unknown) => {
        if (!isConnectFailure(err) || !bodyUnread(head, body)) throw err;
        const again = next();
        if (!again) throw err;
        onRetry();
        series.follow(again.series);
        body?.unpipe(); // from the first attempt's dead request, before the second pipes it
        return again.send(head, body, hooks);
      }),
  };
}

/** Whether the request body can still be sent whole: there is none, or nothing was read from it. */
export function bodyUnread(head: RequestHead, body: Readable | null): boolean {
  return !head.hasBody || body === null || !body.readableDidRead;
}

/** An HttpSeries that records responses in whichever endpoint's series it follows last. */
class FollowingSeries implements HttpSeries {
  readonly request: Counter;
  #current: HttpSeries;

  constructor(first: HttpSeries) {
    this.request = first.request;
    this.#current = first;
  }

  follow(series: HttpSeries): void {
    this.#current = series;
  }

  response(status: number, grpcStatus: string | undefined, error: string | undefined) {
    return this.#current.response(status, grpcStatus, error);
  }
}
