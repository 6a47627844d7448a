/**
 * Assembles one sidecar proxy from its configuration: discovery, client pools, the inbound and
 * outbound stacks, their listeners, upstream bindings and the admin server; and takes it down
 * gracefully (DESIGN.md §5: stop accepting, finish in-flight work within the grace period,
 * GOAWAY on HTTP/2, exit).
 */
import type http from 'node:http';
import type net from 'node:net';
import { formatHostPort, parseHostPort } from '../lib/addr.js';
import { listenOn } from '../lib/listen.js';
import type { Logger } from '../lib/log.js';
import { registerProcessMetrics } from '../lib/metrics/process-metrics.js';
import { newAdminServer } from './admin/admin-server.js';
import type { ProxyConfig } from './config.js';
import type { NextHops, ProxyContext } from './context.js';
import { newGrpcDiscovery } from './discovery/discovery-grpc.js';
import { newStaticDiscovery } from './discovery/discovery-static.js';
import { H2Pool } from './http/h2-pool.js';
import { installLeanAsyncBind } from './http/lean-async-bind.js';
import { newH1Client } from './http/upstream-h1.js';
import { identityServing, identityStatus, newProxyIdentity } from './identity/proxy-identity.js';
import { newInboundStack } from './inbound/inbound-stack.js';
import { ProxyMetrics } from './metrics/proxy-metrics.js';
import { type NativeMemoryGc, startNativeMemoryGc } from './native-memory-gc.js';
import { newOutboundStack } from './outbound/outbound-stack.js';
import { newInboundAuthz } from './policy/inbound-authz.js';
import { type InboundPolicySource, policySourceFor } from './policy/policy-client.js';
import { type Connector, newTcpConnector } from './tcp/connect.js';
import { type Listener, listen } from './tcp/listener.js';
import { newMeshConnector } from './tls/mesh-connector.js';
import { inboundTlsLabels, TLS_DISABLED } from './tls/tls-labels.js';

export interface RunningProxy {
  readonly outbound?: string;
  readonly inbound?: string;
  readonly admin?: string;
  readonly upstreams: Readonly<Record<string, string>>;
  /** Graceful shutdown; resolves when everything is closed (or destroyed after the grace period). */
  shutdown(): Promise<void>;
  /** Resolves when the proxy has shut down, however that began. */
  readonly closed: Promise<void>;
}

/** Pooled connections per next-hop address for HTTP/1 (requests beyond it queue in the agent). */
const MAX_H1_CONNECTIONS_PER_HOST = 256;
/** Memory outside the V8 heap is read this often (one /proc/self/statm read each)... */
const NATIVE_GC_CHECK_MS = 250;
/** ...and a full collection asked for at most this often: each costs far more than its pause. */
const NATIVE_GC_MIN_GAP_MS = 10_000;

export async function startProxy(config: ProxyConfig, log: Logger): Promise<RunningProxy> {
  // Every request on an HTTP/2 client session binds an AsyncResource: make that cheap (the file).
  installLeanAsyncBind();
  const metrics = new ProxyMetrics();
  registerProcessMetrics(metrics.registry);
  // Started first: the certificate is being fetched while the listeners bind; /ready waits for it.
  const identity = await newProxyIdentity(config, metrics, log);
  const ctx: ProxyContext = {
    config,
    log,
    metrics,
    discovery: config.destinationAddr
      ? newGrpcDiscovery(formatHostPort(config.destinationAddr), log, { idleMs: config.destinationIdleMs })
      : config.destinations
        ? newStaticDiscovery(config.destinations, log)
        : null,
    direct: newNextHops(newTcpConnector(config.connectTimeoutMs), log),
    // With an identity, mTLS to every meshed endpoint whose identity discovery knows.
    mesh: newNextHops(
      identity
        ? newMeshConnector(identity, config.connectTimeoutMs)
        : newTcpConnector(config.connectTimeoutMs),
      log,
    ),
    identity,
    draining: false,
  };
  const listeners: Listener[] = [];
  let policy: InboundPolicySource | undefined;
  const drains: (() => void)[] = [];
  let admin: http.Server | undefined;
  let adminAddr: string | undefined;
  let ready = false;
  let closing: Promise<void> | undefined;
  let resolveClosed!: () => void;
  const closed = new Promise<void>((r) => (resolveClosed = r));
  const upstreams: Record<string, string> = {};
  let outboundAddr: string | undefined;
  let inboundAddr: string | undefined;

  try {
    if (config.outboundListenAddr) {
      const outbound = newOutboundStack(ctx, () => outboundAddr);
      drains.push(outbound.drain);
      const l = await listen(
        config.outboundListenAddr,
        'outbound',
        metrics,
        config.maxConnections,
        outbound.accept,
        TLS_DISABLED,
      );
      listeners.push(l);
      outboundAddr = l.addr;
      for (const b of config.upstreams) {
        const authority = formatHostPort(parseHostPort(b.name, b.localPort || 80));
        const ul = await listen(
          { host: '127.0.0.1', port: b.localPort },
          'outbound',
          metrics,
          config.maxConnections,
          (s: net.Socket) => outbound.acceptUpstream(s, authority),
          TLS_DISABLED,
        );
        listeners.push(ul);
        upstreams[b.name] = ul.addr;
      }
    }
    if (config.inboundListenAddr) {
      if (config.appPort === undefined)
        throw new Error('WEFT_PROXY_APP_PORT is required when the inbound listener is enabled');
      // Inbound authorization (docs/policy.md): the control plane's policy for this workload, or the proxy default.
      policy = policySourceFor(config, [config.appPort, ...config.inboundPorts], log);
      const inbound = newInboundStack(ctx, config.appPort, newInboundAuthz(policy, metrics.registry, log));
      drains.push(inbound.drain);
      const l = await listen(
        config.inboundListenAddr,
        'inbound',
        metrics,
        config.maxConnections,
        inbound.accept,
        // Known once mTLS is terminated or the connection found to be plaintext (inbound-stack.ts).
        inboundTlsLabels(ctx.identity !== null, undefined),
        ctx.identity !== null,
      );
      listeners.push(l);
      inboundAddr = l.addr;
    }
    if (config.adminListenAddr) {
      admin = newAdminServer({
        registry: metrics.registry,
        log,
        config,
        ready: () => ready && !ctx.draining && (identity ? identityServing(identity) : true),
        identity: () => (identity ? identityStatus(identity) : null),
        shutdown: () => void shutdown(),
      });
      const at = config.adminListenAddr;
      const a = admin;
      adminAddr = await listenOn(a, at);
    }
  } catch (err) {
    for (const l of listeners) l.server.close();
    admin?.close();
    ctx.discovery?.close();
    policy?.close();
    identity?.close();
    throw err;
  }
  // HTTP/2 streams leave native memory that only a full collection frees (the file says how much).
  const nativeGc = config.nativeGcSlackMb > 0 ? startNativeGc(config.nativeGcSlackMb, metrics) : undefined;
  ready = true;

  function shutdown(): Promise<void> {
    closing ??= (async () => {
      log.info('shutting down', { graceMs: config.shutdownGraceMs });
      ctx.draining = true;
      const drained = Promise.all(listeners.map((l) => l.close()));
      for (const d of drains) d();
      let timer: NodeJS.Timeout | undefined;
      const expired = new Promise<'expired'>(
        (r) => (timer = setTimeout(() => r('expired'), config.shutdownGraceMs)),
      );
      const outcome = await Promise.race([drained.then(() => 'drained' as const), expired]);
      clearTimeout(timer);
      if (outcome === 'expired') {
        log.warn('grace period over; closing remaining connections', { graceMs: config.shutdownGraceMs });
        for (const l of listeners) l.destroyAll();
      }
      for (const hops of [ctx.direct, ctx.mesh]) {
        hops.h2Pool.close();
        hops.h1Client.destroy();
      }
      ctx.discovery?.close();
      nativeGc?.stop();
      policy?.close();
      identity?.close();
      admin?.closeAllConnections();
      await new Promise<void>((r) => (admin ? admin.close(() => r()) : r()));
      log.info('shut down', { outcome });
      resolveClosed();
    })();
    return closing;
  }

  return { outbound: outboundAddr, inbound: inboundAddr, admin: adminAddr, upstreams, shutdown, closed };
}

function startNativeGc(slackMb: number, metrics: ProxyMetrics): NativeMemoryGc {
  const gc = startNativeMemoryGc({
    slackBytes: slackMb * 1024 * 1024,
    intervalMs: NATIVE_GC_CHECK_MS,
    minGapMs: NATIVE_GC_MIN_GAP_MS,
  });
  const counted = metrics.registry
    .counter(
      'weft_proxy_native_gc_total',
      'Full V8 collections the proxy asked for because memory outside the V8 heap grew by --native-gc-slack-mb.',
    )
    .with({});
  let seen = 0;
  metrics.registry.addCollector(() => {
    const now = gc.collections();
    counted.inc(now - seen);
    seen = now;
  });
  return gc;
}

function newNextHops(connector: Connector, log: Logger): NextHops {
  return {
    connector,
    h2Pool: new H2Pool(connector, log),
    h1Client: newH1Client(connector, MAX_H1_CONNECTIONS_PER_HOST),
  };
}
