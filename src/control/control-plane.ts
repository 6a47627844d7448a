/**
 * Assembles the control plane from its configuration (DESIGN.md §6): the embedded store in the
 * state directory, the Destination watcher and its gRPC server; and takes it down gracefully.
 * Services are added here as they arrive (identity, policy, the HTTP API), each with its own
 * address in `addresses`.
 */
import * as grpc from '@grpc/grpc-js';
import { destinationApi } from '../../proto/destination.js';
import { policyApi } from '../../proto/policy.js';
import { formatHostPort, type HostPort, parseHostPort } from '../lib/addr.js';
import { DEFAULT_POLICIES } from '../lib/authz.js';
import { parseIntIn, parseOneOf, parseSettings, parseString, type SettingsOf } from '../lib/config.js';
import { listenOn } from '../lib/listen.js';
import { LOG_LEVELS, type Logger } from '../lib/log.js';
import type { Store } from '../store/store.js';
import { openEmbeddedStore } from '../store/store-embedded.js';
import { newApiServer } from './api/api-server.js';
import {
  DEFAULT_MAX_QUEUED_UPDATES,
  type DestinationServer,
  newDestinationServer,
} from './destination/destination-server.js';
import { newDestinationWatcher } from './destination/destination-watcher.js';
import { newWorkloadGc } from './health/workload-gc.js';
import {
  DEFAULT_HEALTH_FAILURE_THRESHOLD,
  DEFAULT_HEALTH_INTERVAL_MS,
  DEFAULT_WORKLOAD_GC_AFTER_MS,
  newWorkloadHealth,
} from './health/workload-health.js';
import {
  IDENTITY_SETTINGS,
  type RunningIdentityService,
  startIdentityService,
} from './identity/identity-service.js';
import { newControlMetrics } from './metrics/control-metrics.js';
import { metricsEndpoint } from './metrics/metrics-endpoint.js';
import { newPolicyServer } from './policy/policy-server.js';
import { newPolicyWatcher } from './policy/policy-watcher.js';

export const CONTROL_ENV_PREFIX = 'WEFT_CONTROL_';

export const CONTROL_SETTINGS = {
  state: {
    env: 'WEFT_CONTROL_STATE',
    default: '.weft',
    parse: parseString,
    doc: 'state directory of the embedded store (created if missing)',
  },
  destinationAddr: {
    env: 'WEFT_CONTROL_DESTINATION_ADDR',
    default: '127.0.0.1:8086',
    parse: (raw: string): HostPort => parseHostPort(raw),
    doc: 'listen address of the Destination gRPC service (port 0: any free port)',
  },
  apiAddr: {
    env: 'WEFT_CONTROL_API_ADDR',
    default: '127.0.0.1:8084',
    parse: (raw: string): HostPort => parseHostPort(raw),
    doc: 'listen address of the public HTTP/JSON API used by the CLI (port 0: any free port)',
  },
  destinationMaxQueuedUpdates: {
    env: 'WEFT_CONTROL_DESTINATION_MAX_QUEUED_UPDATES',
    default: String(DEFAULT_MAX_QUEUED_UPDATES),
    parse: parseIntIn(1, 1_000_000),
    doc: 'updates a Destination subscriber may fall behind before it is disconnected',
  },
  healthIntervalMs: {
    env: 'WEFT_CONTROL_HEALTH_INTERVAL_MS',
    default: String(DEFAULT_HEALTH_INTERVAL_MS),
    parse: parseIntIn(50, 60_000),
    doc: "ms between two liveness probes of a Workload's proxy (Workloads with spec.adminAddress)",
  },
  healthFailureThreshold: {
    env: 'WEFT_CONTROL_HEALTH_FAILURE_THRESHOLD',
    default: String(DEFAULT_HEALTH_FAILURE_THRESHOLD),
    parse: parseIntIn(1, 100),
    doc: 'failed liveness probes in a row that take a Workload out of discovery',
  },
  workloadGcAfterMs: {
    env: 'WEFT_CONTROL_WORKLOAD_GC_AFTER_MS',
    default: String(DEFAULT_WORKLOAD_GC_AFTER_MS),
    parse: parseIntIn(0, 86_400_000),
    doc: 'ms of failing liveness probes after which a Workload is deleted from the store (0: never)',
  },
  defaultPolicy: {
    env: 'WEFT_CONTROL_DEFAULT_POLICY',
    default: 'all-unauthenticated',
    parse: parseOneOf(DEFAULT_POLICIES),
    doc: 'mesh-wide inbound policy for ports without a Server in namespaces without their own default (docs/policy.md)',
  },
  shutdownGraceMs: {
    env: 'WEFT_CONTROL_SHUTDOWN_GRACE_MS',
    default: '5000',
    parse: parseIntIn(0, 3_600_000),
    doc: 'ms open streams get to end after SIGTERM before connections are closed',
  },
  ...IDENTITY_SETTINGS,
  logLevel: {
    env: 'WEFT_CONTROL_LOG_LEVEL',
    default: 'info',
    parse: parseOneOf(LOG_LEVELS),
    doc: 'error|warn|info|debug|trace',
  },
} as const;

export type ControlConfig = SettingsOf<typeof CONTROL_SETTINGS>;

/** Parses the control-plane settings from an environment-like map; throws ConfigError listing every problem. */
export function loadControlConfig(env: Readonly<Record<string, string | undefined>>): ControlConfig {
  return parseSettings(CONTROL_SETTINGS, env);
}

export interface ControlPlaneAddresses {
  /** `host:port` the Destination service listens on. */
  readonly destination: string;
  /** `host:port` of the public HTTP/JSON API. */
  readonly api: string;
  /** `host:port` of the Identity service (gRPC over TLS). */
  readonly identity: string;
}

export interface RunningControlPlane {
  readonly addresses: ControlPlaneAddresses;
  /** The store every controller reads; an API server is wired to the same one. */
  readonly store: Store;
  readonly destination: DestinationServer;
  /** The CA, bootstrap tokens and Identity gRPC server (docs/identity.md). */
  readonly identity: RunningIdentityService;
  /** Stops accepting, ends open streams (clients reconnect elsewhere or later), closes the store. Idempotent. */
  shutdown(): Promise<void>;
}

/** Opens the store, indexes it, and serves Destination; rejects (and releases everything) on failure. */
export async function startControlPlane(config: ControlConfig, log: Logger): Promise<RunningControlPlane> {
  const metrics = newControlMetrics();
  const store = metrics.countStoreWrites(await openEmbeddedStore({ stateDir: config.state }));
  // After the store: its lock on the state directory also guards <state>/identity/.
  let identity: RunningIdentityService;
  try {
    identity = await startIdentityService(config, log);
  } catch (err) {
    await store.close();
    throw err;
  }
  const health = newWorkloadHealth(log, {
    intervalMs: config.healthIntervalMs,
    failureThreshold: config.healthFailureThreshold,
    gcAfterMs: config.workloadGcAfterMs,
  });
  const gc = newWorkloadGc(store, health, log);
  const watcher = newDestinationWatcher(store, log, health);
  const server = new grpc.Server({
    // Notice clients that vanished without closing (a SIGKILLed proxy on another host).
    'grpc.keepalive_time_ms': 30_000,
    'grpc.keepalive_timeout_ms': 10_000,
  });
  const destination = newDestinationServer(metrics.countUpdates(watcher), log, {
    maxQueuedUpdates: config.destinationMaxQueuedUpdates,
  });
  // Policy (docs/policy.md) is served on the same gRPC server as Destination.
  const policyWatcher = newPolicyWatcher(store, log, config.defaultPolicy);
  const policy = newPolicyServer(policyWatcher, log);
  metrics.observe({ store, watcher, destination, health, gc, policy, identity });
  const api = newApiServer(store, log, {
    metrics: metricsEndpoint(metrics, log),
    policy: policyWatcher,
    identity: { ...identity, counts: identity.server.counts },
  });
  let port: number;
  let apiAddr: string;
  try {
    await watcher.start();
    await policyWatcher.start();
    server.addService(destinationApi().service, destination.handlers);
    server.addService(policyApi().service, policy.handlers);
    const at = formatHostPort(config.destinationAddr);
    port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(at, grpc.ServerCredentials.createInsecure(), (err, p) =>
        err ? reject(err) : resolve(p),
      ),
    );
    apiAddr = await listenOn(api, config.apiAddr);
  } catch (err) {
    api.close();
    server.forceShutdown();
    watcher.close();
    policyWatcher.close();
    gc.close();
    health.close();
    await identity.shutdown(0);
    await store.close();
    throw err;
  }
  const addresses = Object.freeze({
    destination: formatHostPort({ host: config.destinationAddr.host, port }),
    api: apiAddr,
    identity: identity.addr,
  });

  let closing: Promise<void> | undefined;
  const shutdown = () =>
    (closing ??= (async () => {
      log.info('control plane shutting down', { graceMs: config.shutdownGraceMs });
      destination.endStreams();
      policy.endStreams();
      const identityClosed = identity.shutdown(config.shutdownGraceMs);
      api.closeIdleConnections();
      const apiClosed = new Promise<void>((resolve) => api.close(() => resolve()));
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          log.warn('grace period over; closing remaining connections', { graceMs: config.shutdownGraceMs });
          server.forceShutdown();
          resolve();
        }, config.shutdownGraceMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
      api.closeAllConnections();
      await apiClosed;
      policyWatcher.close();
      await identityClosed;
      watcher.close();
      gc.close();
      health.close();
      await store.close();
      log.info('control plane shut down');
    })());
  return { addresses, store, destination, identity, shutdown };
}
