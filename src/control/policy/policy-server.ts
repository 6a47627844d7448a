/**
 * The API tier of Policy: the grpc-js handlers of proto/policy.proto over a PolicyWatcher. Each
 * stream has its own bounded queue (the SubscriberStream Destination uses); a subscriber that
 * falls behind is disconnected with RESOURCE_EXHAUSTED and counted.
 */
import * as grpc from '@grpc/grpc-js';
import type { InboundPolicy, InboundWorkload, PolicyHandlers } from '../../../proto/policy.js';
import { namespaceOfSpiffeId } from '../../lib/authz.js';
import type { Logger } from '../../lib/log.js';
import { DEFAULT_NAMESPACE } from '../../store/resource.js';
import { SubscriberStream } from '../destination/subscriber-stream.js';
import type { WorkloadRef } from './policy-compiler.js';
import type { PolicyWatcher } from './policy-watcher.js';

export interface PolicyServerOptions {
  /** Policies a subscriber may fall behind before it is disconnected (default 100). */
  readonly maxQueuedUpdates?: number;
}

export interface PolicyServer {
  readonly handlers: PolicyHandlers;
  stats(): { readonly streams: number; readonly slowSubscribersDisconnected: number };
  /** Ends every open stream with UNAVAILABLE so clients reconnect. */
  endStreams(): void;
}

const LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** The WorkloadRef of a request, or why it is not one. */
export function workloadRefOf(req: InboundWorkload): WorkloadRef | string {
  const namespace = req.namespace || namespaceOfSpiffeId(req.identity) || DEFAULT_NAMESPACE;
  for (const [field, v] of [
    ['namespace', namespace],
    ['service', req.service],
    ['workload', req.workload],
  ] as const)
    if (v !== '' && !LABEL.test(v)) return `${field} ${JSON.stringify(v)} is not a DNS-1123 label`;
  if (req.service === '' && req.workload === '' && req.identity === '')
    return 'service, workload or identity is required';
  return {
    namespace,
    service: req.service,
    workload: req.workload,
    identity: req.identity,
    ports: [...req.ports],
  };
}

export function newPolicyServer(
  watcher: PolicyWatcher,
  log: Logger,
  options: PolicyServerOptions = {},
): PolicyServer {
  const maxQueued = options.maxQueuedUpdates ?? 100;
  const open = new Set<SubscriberStream<InboundPolicy>>();
  let slowSubscribersDisconnected = 0;

  function watchInbound(call: grpc.ServerWritableStream<InboundWorkload, InboundPolicy>): void {
    const w = workloadRefOf(call.request);
    if (typeof w === 'string') {
      call.emit('error', { code: grpc.status.INVALID_ARGUMENT, details: w });
      return;
    }
    const stream = new SubscriberStream(call, {
      maxQueued,
      onOverflow: () => {
        slowSubscribersDisconnected++;
        log.warn('slow policy subscriber disconnected', { ...w, peer: call.getPeer(), maxQueued });
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
    unsubscribe = watcher.subscribe(w, (p) => stream.push(p));
    if (stream.closed) done();
    log.debug('policy subscribed', { ...w, identity: call.request.identity, peer: call.getPeer() });
  }

  return {
    handlers: { WatchInbound: watchInbound },
    stats: () => ({ streams: open.size, slowSubscribersDisconnected }),
    endStreams() {
      for (const s of [...open])
        s.end({ code: grpc.status.UNAVAILABLE, details: 'control plane shutting down' });
      open.clear();
    },
  };
}
