/**
 * The API tier of Destination (like linkerd2's destination/server.go): the grpc-js handlers of
 * proto/destination.proto over a DestinationWatcher. Each stream gets its own bounded queue
 * (SubscriberStream); a subscriber that falls behind is disconnected with RESOURCE_EXHAUSTED and
 * counted.
 */
import * as grpc from '@grpc/grpc-js';
import type {
  DestinationHandlers,
  DestinationProfile,
  GetDestination,
  Update,
} from '../../../proto/destination.js';
import { normalizeAuthority } from '../../lib/addr.js';
import type { Logger } from '../../lib/log.js';
import type { DestinationWatcher } from './destination-watcher.js';
import { SubscriberStream } from './subscriber-stream.js';

export interface DestinationServerOptions {
  /** Updates a subscriber may fall behind before it is disconnected (default 1000). */
  readonly maxQueuedUpdates?: number;
}

export interface DestinationServerStats {
  /** Streams open now. */
  readonly streams: number;
  /** Streams disconnected for falling behind, since start. */
  readonly slowSubscribersDisconnected: number;
}

export interface DestinationServer {
  readonly handlers: DestinationHandlers;
  stats(): DestinationServerStats;
  /** Ends every open stream with UNAVAILABLE so clients reconnect (to this or another replica). */
  endStreams(): void;
}

export const DEFAULT_MAX_QUEUED_UPDATES = 1000;

export function newDestinationServer(
  watcher: DestinationWatcher,
  log: Logger,
  options: DestinationServerOptions = {},
): DestinationServer {
  const maxQueued = options.maxQueuedUpdates ?? DEFAULT_MAX_QUEUED_UPDATES;
  const open = new Set<SubscriberStream<unknown>>();
  let slowSubscribersDisconnected = 0;

  function serve<T>(
    call: grpc.ServerWritableStream<GetDestination, T>,
    method: string,
    subscribe: (authority: string, push: (m: T) => void) => () => void,
  ): void {
    let authority: string;
    try {
      authority = normalizeAuthority(call.request.authority);
    } catch (err) {
      call.emit('error', { code: grpc.status.INVALID_ARGUMENT, details: (err as Error).message });
      return;
    }
    const stream: SubscriberStream<T> = new SubscriberStream(call, {
      maxQueued,
      onOverflow: () => {
        slowSubscribersDisconnected++;
        log.warn('slow subscriber disconnected', { method, authority, peer: call.getPeer(), maxQueued });
        done();
      },
    });
    open.add(stream as SubscriberStream<unknown>);
    let unsubscribe: (() => void) | undefined;
    const done = () => {
      open.delete(stream as SubscriberStream<unknown>);
      unsubscribe?.();
    };
    call.on('cancelled', done);
    call.on('close', done);
    unsubscribe = subscribe(authority, (m) => stream.push(m));
    if (stream.closed) done();
    log.debug('subscribed', { method, authority, peer: call.getPeer() });
  }

  return {
    handlers: {
      Get: (call: grpc.ServerWritableStream<GetDestination, Update>) =>
        serve(call, 'Get', (a, push) => watcher.subscribeEndpoints(a, push)),
      GetProfile: (call: grpc.ServerWritableStream<GetDestination, DestinationProfile>) =>
        serve(call, 'GetProfile', (a, push) => watcher.subscribeProfile(a, push)),
    },
    stats: () => ({ streams: open.size, slowSubscribersDisconnected }),
    endStreams() {
      for (const s of [...open])
        s.end({ code: grpc.status.UNAVAILABLE, details: 'control plane shutting down' });
      open.clear();
    },
  };
}
