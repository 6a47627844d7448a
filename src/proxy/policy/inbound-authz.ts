/**
 * Inbound authorization for the proxy (docs/policy.md): decides each HTTP request and each opaque
 * TCP connection with the policy in force (src/lib/authz.ts), counts the outcome, and logs
 * denials and audit-mode would-be denials (at most once a second per server, with the number
 * left out, so a flood of denied requests cannot flood the log).
 *
 * Metrics (labels srv_name, srv_port; allows add authz_name and authz_rule):
 *   inbound_http_authz_allow_total, inbound_http_authz_deny_total, inbound_http_authz_audit_total
 *   inbound_tcp_authz_allow_total,  inbound_tcp_authz_deny_total,  inbound_tcp_authz_audit_total
 * `*_audit_total` counts what an `audit` policy let through but would otherwise have denied.
 */
import { type AuthzDecision, type AuthzPeer, describePeer } from '../../lib/authz.js';
import { AuthorizationDeniedError } from '../../lib/errors.js';
import type { Logger } from '../../lib/log.js';
import type { Counter, CounterFamily, Registry } from '../../lib/metrics/registry.js';
import type { InboundPolicySource } from './policy-client.js';

export interface InboundAuthz {
  /** Decides one HTTP request to the workload's `port`; counted. */
  authorizeHttp(port: number, peer: AuthzPeer, method: string, path: string): AuthzDecision;
  /** Decides one opaque TCP connection to `port`; counted. */
  authorizeTcp(port: number, peer: AuthzPeer): AuthzDecision;
  /** The error a denied request fails with (403 / PERMISSION_DENIED at the rescue edge). */
  deniedError(d: AuthzDecision, peer: AuthzPeer): AuthorizationDeniedError;
  /** The Server of `port` is `opaque`: its connections skip protocol detection. */
  isOpaque(port: number): boolean;
  /** Resolves once the first policy is in force (or its wait is over). */
  whenReady(): Promise<void>;
}

interface Families {
  readonly allow: CounterFamily;
  readonly deny: CounterFamily;
  readonly audit: CounterFamily;
}

const LOG_INTERVAL_MS = 1000;
/** Bound on cached counter handles (the registry bounds the series themselves). */
const MAX_CACHED_COUNTERS = 5000;

export function newInboundAuthz(source: InboundPolicySource, registry: Registry, log: Logger): InboundAuthz {
  const families = (proto: 'http' | 'tcp'): Families => ({
    allow: registry.counter(
      `inbound_${proto}_authz_allow_total`,
      `${proto} ${unit(proto)} allowed by inbound policy`,
    ),
    deny: registry.counter(
      `inbound_${proto}_authz_deny_total`,
      `${proto} ${unit(proto)} denied by inbound policy`,
    ),
    audit: registry.counter(
      `inbound_${proto}_authz_audit_total`,
      `${proto} ${unit(proto)} an audit policy allowed that would otherwise be denied`,
    ),
  });
  const http = families('http');
  const tcp = families('tcp');
  const lastLog = new Map<string, { atMs: number; suppressed: number }>();
  const counters = new Map<string, Counter>();

  function record(
    f: Families,
    proto: string,
    d: AuthzDecision,
    peer: AuthzPeer,
    what: string,
  ): AuthzDecision {
    counter(f, proto, d).inc();
    if (d.verdict !== 'allow') throttledLog(d, proto, peer, what);
    return d;
  }

  /** The counter of a decision, cached: the hot path pays one string key and one map lookup. */
  function counter(f: Families, proto: string, d: AuthzDecision): Counter {
    const key = `${proto}\0${d.verdict}\0${d.server}\0${d.port}\0${d.authorization}\0${d.rule}`;
    let c = counters.get(key);
    if (!c) {
      if (counters.size >= MAX_CACHED_COUNTERS) counters.clear();
      const srv = { srv_name: d.server, srv_port: String(d.port) };
      c =
        d.verdict === 'allow'
          ? f.allow.with({ ...srv, authz_name: d.authorization, authz_rule: String(d.rule) })
          : (d.verdict === 'deny' ? f.deny : f.audit).with(srv);
      counters.set(key, c);
    }
    return c;
  }

  function throttledLog(d: AuthzDecision, proto: string, peer: AuthzPeer, what: string): void {
    const key = `${d.verdict}\0${d.server}\0${d.port}`;
    const now = performance.now();
    const last = lastLog.get(key);
    if (last && now - last.atMs < LOG_INTERVAL_MS) {
      last.suppressed++;
      return;
    }
    if (lastLog.size > 1000) lastLog.clear();
    lastLog.set(key, { atMs: now, suppressed: 0 });
    const msg = d.verdict === 'deny' ? 'inbound request denied by policy' : 'authorization audit: would deny';
    log.info(msg, {
      proto,
      server: d.server,
      port: d.port,
      client: describePeer(peer),
      request: what,
      reason: d.reason,
      ...(last?.suppressed ? { suppressedSinceLastLog: last.suppressed } : {}),
    });
  }

  return {
    authorizeHttp: (port, peer, method, path) =>
      record(http, 'http', source.current().decide(port, peer, { method, path }), peer, `${method} ${path}`),
    authorizeTcp: (port, peer) => record(tcp, 'tcp', source.current().decide(port, peer), peer, 'connection'),
    deniedError: (d, peer) =>
      new AuthorizationDeniedError(d.server, `${d.reason} (client ${describePeer(peer)})`),
    isOpaque: (port) => source.current().server(port)?.proxyProtocol === 'opaque',
    whenReady: () => source.whenReady(),
  };
}

function unit(proto: 'http' | 'tcp'): string {
  return proto === 'http' ? 'requests' : 'connections';
}
