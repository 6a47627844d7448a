/**
 * The proxy's inbound policy source (docs/policy.md): either one fixed default (no control plane)
 * or the control plane's `Policy/WatchInbound` stream for this workload.
 *
 * Fail static (DESIGN.md §5): the last policy received stays in force while the control plane is
 * unreachable; the stream is reopened after a jittered exponential backoff (100 ms doubling to
 * 10 s, reset once a message arrives). Until the first policy arrives the proxy's own default
 * (WEFT_PROXY_DEFAULT_INBOUND_POLICY) applies; `whenReady` lets the inbound listener hold new
 * connections until then, for at most `firstAnswerTimeoutMs`.
 */
import * as grpc from '@grpc/grpc-js';
import {
  type InboundPolicy,
  type InboundWorkload,
  type PolicyClient,
  policyApi,
} from '../../../proto/policy.js';
import { formatHostPort } from '../../lib/addr.js';
import {
  type Authorizer,
  type DefaultPolicy,
  defaultOnlyPolicy,
  namespaceOfSpiffeId,
  newAuthorizer,
} from '../../lib/authz.js';
import type { Logger } from '../../lib/log.js';
import { type BackoffOptions, backoffMs } from '../balance/failure-accrual.js';

export interface InboundPolicySource {
  /** The authorizer of the policy in force now; a new object after every update. */
  current(): Authorizer;
  /** Resolves at the first policy from the control plane or at the first-answer deadline; never rejects. */
  whenReady(): Promise<void>;
  /** Stops watching; `current()` keeps answering with the last policy. Idempotent. */
  close(): void;
}

/** A source that never changes: `policy` for every port (the proxy without a control plane). */
export function newStaticPolicySource(namespace: string, policy: DefaultPolicy): InboundPolicySource {
  const authorizer = newAuthorizer(defaultOnlyPolicy(namespace, policy, 'proxy'));
  return { current: () => authorizer, whenReady: () => Promise.resolve(), close: () => {} };
}

export interface PolicyClientOptions {
  /** How long `whenReady` waits for the first policy (default 1000 ms). */
  readonly firstAnswerTimeoutMs?: number;
  /** Reconnect backoff (default 100 ms → 10 s, jitter 0.5). */
  readonly backoff?: BackoffOptions;
}

const DEFAULT_BACKOFF: BackoffOptions = Object.freeze({
  minBackoffMs: 100,
  maxBackoffMs: 10_000,
  jitter: 0.5,
});

/**
 * Watches the inbound policy of `workload` at the Policy service `addr` (`host:port`). Starts at
 * once; `fallback` is in force until the first answer.
 */
export function newGrpcPolicySource(
  addr: string,
  workload: InboundWorkload,
  fallback: DefaultPolicy,
  log: Logger,
  options: PolicyClientOptions = {},
): InboundPolicySource {
  const backoff = options.backoff ?? DEFAULT_BACKOFF;
  const client: PolicyClient = new (policyApi().Client)(addr, grpc.credentials.createInsecure(), {
    'grpc.keepalive_time_ms': 10_000,
    'grpc.keepalive_timeout_ms': 5_000,
    'grpc.initial_reconnect_backoff_ms': backoff.minBackoffMs,
    'grpc.max_reconnect_backoff_ms': backoff.maxBackoffMs,
  });
  let authorizer = newAuthorizer(defaultOnlyPolicy(workload.namespace, fallback, 'proxy'));
  let call: grpc.ClientReadableStream<InboundPolicy> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let attempt = 0;
  let closed = false;
  let answered!: () => void;
  const ready = new Promise<void>((resolve) => (answered = resolve));
  const deadline = setTimeout(() => {
    log.warn('no inbound policy from the control plane yet; the proxy default applies', {
      defaultInboundPolicy: fallback,
      waitedMs: options.firstAnswerTimeoutMs ?? 1000,
    });
    answered();
  }, options.firstAnswerTimeoutMs ?? 1000);
  deadline.unref();

  function open(): void {
    const c = client.WatchInbound(workload);
    call = c;
    c.on('data', (p: InboundPolicy) => {
      attempt = 0;
      authorizer = newAuthorizer(p);
      clearTimeout(deadline);
      answered();
      log.info('inbound policy updated', {
        servers: p.servers.map((s) => `${s.name}:${s.port}`),
        defaultPolicy: p.defaultPolicy,
        defaultSource: p.defaultSource,
      });
    });
    c.on('error', () => {}); // the status says it all
    c.on('status', (s: grpc.StatusObject) => {
      if (closed || call !== c) return;
      call = undefined;
      const delayMs = backoffMs(attempt++, backoff, Math.random);
      log.warn('policy stream ended; keeping the last inbound policy', {
        code: grpc.status[s.code] ?? s.code,
        details: s.details,
        retryInMs: Math.round(delayMs),
      });
      timer = setTimeout(() => {
        timer = undefined;
        if (!closed) open();
      }, delayMs);
    });
  }
  open();

  return {
    current: () => authorizer,
    whenReady: () => ready,
    close() {
      if (closed) return;
      closed = true;
      clearTimeout(timer);
      clearTimeout(deadline);
      answered();
      call?.cancel();
      client.close();
    },
  };
}

/** What `policySourceFor` reads from the proxy's settings. */
export interface PolicySettings {
  readonly destinationAddr?: { readonly host: string; readonly port: number };
  readonly workloadNamespace: string;
  readonly workloadService?: string;
  readonly workloadName?: string;
  readonly identity?: string;
  readonly defaultInboundPolicy: DefaultPolicy;
}

/**
 * The control plane's policy for this workload when the proxy knows the control plane
 * (WEFT_PROXY_DESTINATION_ADDR) and who it is: its Service (WEFT_PROXY_WORKLOAD_SERVICE, with
 * WEFT_PROXY_WORKLOAD_NAMESPACE and optionally WEFT_PROXY_WORKLOAD_NAME), or else its identity
 * (WEFT_PROXY_IDENTITY: the control plane finds the Workloads registered with it, in the
 * identity's namespace, as for a `weft run` sidecar). Otherwise the fixed proxy default.
 * `ports` are the workload ports the inbound listener serves.
 */
export function policySourceFor(
  s: PolicySettings,
  ports: readonly number[],
  log: Logger,
  options?: PolicyClientOptions,
): InboundPolicySource {
  if (!s.destinationAddr || (!s.workloadService && !s.identity))
    return newStaticPolicySource(s.workloadNamespace, s.defaultInboundPolicy);
  const byService = s.workloadService !== undefined && s.workloadService !== '';
  const workload: InboundWorkload = {
    namespace: byService
      ? s.workloadNamespace
      : (namespaceOfSpiffeId(s.identity ?? '') ?? s.workloadNamespace),
    service: s.workloadService ?? '',
    workload: s.workloadName ?? '',
    identity: s.identity ?? '',
    ports: [...ports],
  };
  return newGrpcPolicySource(
    formatHostPort(s.destinationAddr),
    workload,
    s.defaultInboundPolicy,
    log,
    options,
  );
}
