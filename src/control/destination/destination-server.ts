/**
 * The API tier of Destination (like linkerd2's destination/server.go): the grpc-js handlers of
 * proto/destination.proto over a DestinationWatcher. Each stream gets its own bounded queue
 * (SubscriberStream); a subscriber that falls behind is disconnected with RESOURCE_EXHAUSTED and
 * counted. Messages are encoded here, once per message object: the watcher hands the same object
 * to every subscriber of an authority, so a change to a service with a thousand subscribers is
 * encoded once and the same bytes are written to every stream.
 */
import * as grpc from '@grpc/grpc-js';
import {
  type DestinationHandlers,
  type DestinationProfile,
  encodeProfile,
  encodeUpdate,
  type GetDestination,
  type Update,
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
  const open = new Set<SubscriberStream<Buffer>>();
  let slowSubscribersDisconnected = 0;

  /**
   * `encode`, remembered per message object (messages are never changed once handed out) for
   * as long as the object lives: the first stream a message reaches pays for the encoding.
   */
  function encodeOnce<T extends object>(encode: (m: T) => Buffer): (m: T) => Buffer {
    const encoded = new WeakMap<T, Buffer>();
    return (m) => {
      let bytes = encoded.get(m);
      if (!bytes) encoded.set(m, (bytes = encode(m)));
      return bytes;
    };
  }
  const encodeUpdateOnce = encodeOnce(encodeUpdate);
  const encodeProfileOnce = encodeOnce(encodeProfile);

  function serve<T>(
    typedCall: grpc.ServerWritableStream<GetDestination, T>,
    method: string,
    encode: (m: T) => Buffer,
    subscribe: (authority: string, push: (m: T) => void) => () => void,
  ): void {
    // The service definition (proto/destination.ts) writes pre-encoded Buffers as they are.
    const call = typedCall as unknown as grpc.ServerWritableStream<GetDestination, Buffer>;
    let authority: string;
    try {
      authority = normalizeAuthority(call.request.authority);
    } catch (err) {
      call.emit('error', { code: grpc.status.INVALID_ARGUMENT, details: (err as Error).message });
      return;
    }
    const stream = new SubscriberStream(call, {
      maxQueued,
      onOverflow: () => {
        slowSubscribersDisconnected++;
        log.warn('slow subscriber disconnected', { method, authority, peer: call.getPeer(), maxQueued });
        done();
      },
    });
    open.add(stream);
    let unsubscribe: (() => void) | undefined;
    const done = () => {
      open.delete(stream);
      unsubscribe?.();
    };
    call.on('cancelled', done);
    call.on('close', done);
    unsubscribe = subscribe(authority, (m) => {
      let bytes: Buffer;
      try {
        bytes = encode(m);
      } catch (err) {
        // As grpc-js does for a response it cannot serialize; the fan-out loop goes on.
        log.error('could not encode a Destination message', { method, authority, error: String(err) });
        stream.end({ code: grpc.status.INTERNAL, details: 'Error serializing response' });
        done();
        return;
      }
      stream.push(bytes);
    });
    if (stream.closed) done();
    log.debug('subscribed', { method, authority, peer: call.getPeer() });
  }

  return {
    handlers: {
      Get: (call: grpc.ServerWritableStream<GetDestination, Update>) =>
        serve(call, 'Get', encodeUpdateOnce, (a, push) => watcher.subscribeEndpoints(a, push)),
      GetProfile: (call: grpc.ServerWritableStream<GetDestination, DestinationProfile>) =>
        serve(call, 'GetProfile', encodeProfileOnce, (a, push) => watcher.subscribeProfile(a, push)),
    },
    stats: () => ({ streams: open.size, slowSubscribersDisconnected }),
    endStreams() {
      for (const s of [...open])
        s.end({ code: grpc.status.UNAVAILABLE, details: 'control plane shutting down' });
      open.clear();
    },
  };
}
