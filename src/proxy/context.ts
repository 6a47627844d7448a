/** What every stack of the proxy shares: settings, logs, metrics, discovery and client pools. */

import type { Logger } from '../lib/log.js';
import type { ProxyConfig } from './config.js';
import type { Discovery } from './discovery/discovery.js';
import type { H1Client } from './http/h1-client.js';
import type { H2Pool } from './http/h2-pool.js';
import type { LocalIdentity } from './identity/local-identity.js';
import type { ProxyMetrics } from './metrics/proxy-metrics.js';
import type { Connector } from './tcp/connect.js';

export interface ProxyContext {
  readonly config: ProxyConfig;
  readonly log: Logger;
  readonly metrics: ProxyMetrics;
  /** Null when no discovery source is configured: every authority is then forwarded unmeshed. */
  readonly discovery: Discovery | null;
  /** Connections to the workload's own app and to servers outside the mesh. */
  readonly direct: NextHops;
  /**
   * Connections to peer inbound proxies: mTLS (src/proxy/tls/mesh-connector.ts) to endpoints with
   * an identity when this proxy has one, plain TCP otherwise.
   */
  readonly mesh: NextHops;
  /**
   * This workload's certificate and trust anchors (docs/identity.md), or null when no identity is
   * configured: meshed hops are then plaintext.
   */
  readonly identity: LocalIdentity | null;
  /** True once shutdown began: responses close their connections, listeners are closed. */
  draining: boolean;
}

/** One kind of next hop: how to connect, and the client pools built on that. */
export interface NextHops {
  readonly connector: Connector;
  readonly h2Pool: H2Pool;
  readonly h1Client: H1Client;
}

/**
 * The `tls` label of series that belong to no peer (requests refused before routing). Per-peer
 * series take theirs from src/proxy/tls/tls-labels.ts.
 */
export const TLS_PLAINTEXT = 'false';
