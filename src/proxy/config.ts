/**
 * The proxy's settings: name, environment variable, default and unit side by side. Parsed once
 * by `loadProxyConfig`, frozen, and shown as-is on the admin `/config` endpoint.
 */
import { type HostPort, parseHostPort } from '../lib/addr.js';
import { DEFAULT_POLICIES } from '../lib/authz.js';
import {
  parseIntIn,
  parseList,
  parseOneOf,
  parseSettings,
  parseString,
  type SettingsOf,
} from '../lib/config.js';
import { ConfigError } from '../lib/errors.js';
import { LOG_LEVELS } from '../lib/log.js';

export const ENV_PREFIX = 'WEFT_PROXY_';

/** A listen address, or null when the listener is disabled with `none`. */
const listenAddr = (raw: string): HostPort | null => (raw === 'none' ? null : parseHostPort(raw));
const port = parseIntIn(1, 65535);

/** `NAME=PORT`: a local opaque listener on 127.0.0.1:PORT that carries bytes to service NAME. */
export interface UpstreamBinding {
  readonly name: string;
  readonly localPort: number;
}
export const parseUpstreamBinding = (raw: string): UpstreamBinding => {
  const i = raw.lastIndexOf('=');
  if (i <= 0) throw new Error(`upstream "${raw}" is not NAME=PORT`);
  const localPort = parseIntIn(0, 65535)(raw.slice(i + 1));
  const name = raw.slice(0, i).trim();
  parseHostPort(name, localPort || 80);
  return { name, localPort };
};

/** `spiffe://<trust-domain>/<path>` with a non-empty trust domain and path. */
export const parseSpiffeId = (raw: string): string => {
  if (!/^spiffe:\/\/[a-z0-9._-]+\/[^?#\s]+$/.test(raw) || raw.endsWith('/'))
    throw new Error('expected spiffe://<trust-domain>/ns/<namespace>/sa/<account>');
  return raw;
};

export const PROXY_SETTINGS = {
  outboundListenAddr: {
    env: 'WEFT_PROXY_OUTBOUND_LISTEN_ADDR',
    default: '127.0.0.1:4140',
    parse: listenAddr,
    doc: 'listener for the local app (HTTP/1, CONNECT, h2c); "none" disables',
  },
  inboundListenAddr: {
    env: 'WEFT_PROXY_INBOUND_LISTEN_ADDR',
    default: '0.0.0.0:4143',
    parse: listenAddr,
    doc: 'listener for peers; forwards to the app; "none" disables',
  },
  adminListenAddr: {
    env: 'WEFT_PROXY_ADMIN_LISTEN_ADDR',
    default: '127.0.0.1:4191',
    parse: listenAddr,
    doc: 'admin endpoints: /metrics /ready /live /config /log-level /shutdown',
  },
  appPort: { env: 'WEFT_PROXY_APP_PORT', parse: port, doc: 'the local app port inbound traffic goes to' },
  appHost: {
    env: 'WEFT_PROXY_APP_HOST',
    default: '127.0.0.1',
    parse: parseString,
    doc: 'the local app host',
  },
  inboundPorts: {
    env: 'WEFT_PROXY_INBOUND_PORTS',
    default: '',
    parse: parseList(port),
    doc: 'other local ports peers may reach over the opaque transport (comma separated)',
  },
  destinations: {
    env: 'WEFT_PROXY_DESTINATIONS',
    parse: parseString,
    doc: 'static destinations file (YAML)',
  },
  destinationAddr: {
    env: 'WEFT_PROXY_DESTINATION_ADDR',
    parse: (raw: string): HostPort => parseHostPort(raw),
    doc: 'control plane Destination address host:port (used instead of the destinations file when set)',
  },
  upstreams: {
    env: 'WEFT_PROXY_UPSTREAMS',
    default: '',
    parse: parseList(parseUpstreamBinding),
    doc: 'opaque upstream bindings NAME=PORT (comma separated)',
  },
  opaquePorts: {
    env: 'WEFT_PROXY_OPAQUE_PORTS',
    default: '25,587,3306,4444,5432,6379,9300,11211',
    parse: parseList(port),
    doc: 'server-first ports that skip protocol detection',
  },
  detectTimeoutMs: {
    env: 'WEFT_PROXY_DETECT_TIMEOUT_MS',
    default: '500',
    parse: parseIntIn(1, 60_000),
    doc: "ms to wait for a client's first bytes before treating the connection as opaque TCP",
  },
  connectTimeoutMs: {
    env: 'WEFT_PROXY_CONNECT_TIMEOUT_MS',
    default: '3000',
    parse: parseIntIn(1, 600_000),
    doc: 'ms to establish a TCP connection to the next hop',
  },
  responseTimeoutMs: {
    env: 'WEFT_PROXY_RESPONSE_TIMEOUT_MS',
    default: '0',
    parse: parseIntIn(0, 3_600_000),
    doc: 'ms to response headers (0: none); header weft-timeout overrides per request',
  },
  shutdownGraceMs: {
    env: 'WEFT_PROXY_SHUTDOWN_GRACE_MS',
    default: '30000',
    parse: parseIntIn(0, 3_600_000),
    doc: 'ms in-flight work may take to finish after SIGTERM',
  },
  maxHeaderBytes: {
    env: 'WEFT_PROXY_MAX_HEADER_BYTES',
    default: '16384',
    parse: parseIntIn(1024, 1_048_576),
    doc: 'bytes of request head accepted; more gets 431',
  },
  maxConnections: {
    env: 'WEFT_PROXY_MAX_CONNECTIONS',
    default: '10000',
    parse: parseIntIn(1, 1_000_000),
    doc: 'connections accepted per listener; more are refused and counted',
  },
  meshHttp1Transport: {
    env: 'WEFT_PROXY_MESH_HTTP1_TRANSPORT',
    // http1 by default: measured on this machine, Node's HTTP/2 client and server cost ~1.7x the
    // CPU per request of a keep-alive HTTP/1.1 pool between two proxies (see docs/proxy-contract.md).
    default: 'http1',
    parse: parseOneOf(['h2', 'http1'] as const),
    doc: 'how HTTP/1 requests travel to meshed peers: h2 (multiplexed, one connection per peer) or http1 (keep-alive pool)',
  },
  identity: {
    env: 'WEFT_PROXY_IDENTITY',
    parse: parseSpiffeId,
    doc: "this workload's SPIFFE ID (docs/identity.md); unset: no identity, plaintext to the mesh",
  },
  identityAddr: {
    env: 'WEFT_PROXY_IDENTITY_ADDR',
    parse: (raw: string): HostPort => parseHostPort(raw),
    doc: 'control plane Identity service address host:port (TLS)',
  },
  identityTokenFile: {
    env: 'WEFT_PROXY_IDENTITY_TOKEN_FILE',
    parse: parseString,
    doc: 'file holding the one-time bootstrap token (read once at start)',
  },
  identityTrustAnchorsFile: {
    env: 'WEFT_PROXY_IDENTITY_TRUST_ANCHORS_FILE',
    parse: parseString,
    doc: 'PEM file of the initial trust anchors',
  },
  workloadNamespace: {
    env: 'WEFT_PROXY_WORKLOAD_NAMESPACE',
    default: 'default',
    parse: parseString,
    doc: "this workload's namespace (asked for its inbound policy, docs/policy.md)",
  },
  workloadService: {
    env: 'WEFT_PROXY_WORKLOAD_SERVICE',
    parse: parseString,
    doc: 'the Service this workload serves, for its inbound policy from the control plane (without it: found by WEFT_PROXY_IDENTITY)',
  },
  workloadName: {
    env: 'WEFT_PROXY_WORKLOAD_NAME',
    parse: parseString,
    doc: "this workload's Workload name, for Servers that select one workload (optional)",
  },
  defaultInboundPolicy: {
    env: 'WEFT_PROXY_DEFAULT_INBOUND_POLICY',
    default: 'all-unauthenticated',
    parse: parseOneOf(DEFAULT_POLICIES),
    doc: 'inbound policy without a control plane, or before its first answer (all-unauthenticated|all-authenticated|deny|audit)',
  },
  logLevel: {
    env: 'WEFT_PROXY_LOG_LEVEL',
    default: 'info',
    parse: parseOneOf(LOG_LEVELS),
    doc: 'error|warn|info|debug|trace',
  },
  failfastTimeoutMs: {
    env: 'WEFT_PROXY_FAILFAST_TIMEOUT_MS',
    // Linkerd's outbound failfast timeout is 3 s too.
    default: '3000',
    parse: parseIntIn(0, 600_000),
    doc: 'ms a request (or opaque connection) to a known destination waits for an available endpoint before 503 no endpoints (0: fails at once)',
  },
  balancerQueueCapacity: {
    env: 'WEFT_PROXY_BALANCER_QUEUE_CAPACITY',
    default: '100',
    parse: parseIntIn(0, 1_000_000),
    doc: 'requests per destination that may wait for an endpoint at once; more get 503 load shed',
  },
  // The balancer's latency estimate (src/proxy/balance/balance-p2c-ewma.ts says why these values).
  ewmaDefaultRttMs: {
    env: 'WEFT_PROXY_EWMA_DEFAULT_RTT_MS',
    default: '30',
    parse: parseIntIn(1, 600_000),
    doc: 'latency the balancer assumes for an endpoint before its first response',
  },
  ewmaDecayMs: {
    env: 'WEFT_PROXY_EWMA_DECAY_MS',
    default: '2000',
    parse: parseIntIn(1, 3_600_000),
    doc: 'time constant (ms) of the decay toward zero of a latency estimate no response refreshes: how soon an endpoint avoided as slower is tried again',
  },
  ewmaSmoothingMs: {
    env: 'WEFT_PROXY_EWMA_SMOOTHING_MS',
    default: '250',
    parse: parseIntIn(1, 3_600_000),
    doc: "time constant (ms) over which the balancer averages an endpoint's latency samples",
  },
  nativeGcSlackMb: {
    env: 'WEFT_PROXY_NATIVE_GC_SLACK_MB',
    // Off by default: lower peak memory under HTTP/2 load, but a worse p99 (see the file).
    default: '0',
    parse: parseIntIn(0, 65_536),
    doc: 'MiB that memory outside the V8 heap may grow by before the proxy asks for a full collection, at most once per 10 s (HTTP/2 header strings hold native memory V8 cannot see; src/proxy/native-memory-gc.ts); 0 (default): never; 16 cut peak memory under HTTP/2 load by a third and made p99 worse',
  },
  destinationIdleMs: {
    env: 'WEFT_PROXY_DESTINATION_IDLE_MS',
    default: '300000',
    parse: parseIntIn(1, 86_400_000),
    doc: 'ms a destination looked up from the control plane may go unused before its streams are closed',
  },
} as const;

export type ProxyConfig = SettingsOf<typeof PROXY_SETTINGS>;

/** Parses the proxy settings from an environment-like map; throws ConfigError listing every problem. */
export function loadProxyConfig(env: Readonly<Record<string, string | undefined>>): ProxyConfig {
  const problems: string[] = [];
  let config: ProxyConfig | undefined;
  try {
    config = parseSettings(PROXY_SETTINGS, env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    problems.push(...err.problems);
  }
  // Settings that only make sense together; checked even when others failed, so that one run
  // reports every problem.
  const inboundOn =
    (env.WEFT_PROXY_INBOUND_LISTEN_ADDR ?? PROXY_SETTINGS.inboundListenAddr.default) !== 'none';
  if (inboundOn && env.WEFT_PROXY_APP_PORT === undefined) {
    problems.push(
      'WEFT_PROXY_APP_PORT: required while the inbound listener is enabled (or set WEFT_PROXY_INBOUND_LISTEN_ADDR=none)',
    );
  }
  problems.push(...identityProblems(env));
  if (problems.length > 0 || !config) throw new ConfigError(problems);
  return config;
}

/** The identity settings go together: all four or none (docs/identity.md). */
const IDENTITY_ENVS = [
  PROXY_SETTINGS.identity.env,
  PROXY_SETTINGS.identityAddr.env,
  PROXY_SETTINGS.identityTokenFile.env,
  PROXY_SETTINGS.identityTrustAnchorsFile.env,
] as const;

function identityProblems(env: Readonly<Record<string, string | undefined>>): string[] {
  const set = IDENTITY_ENVS.filter((e) => env[e] !== undefined && env[e] !== '');
  if (set.length === 0 || set.length === IDENTITY_ENVS.length) return [];
  return IDENTITY_ENVS.filter((e) => !set.includes(e)).map(
    (e) => `${e}: required when ${set.join(', ')} ${set.length === 1 ? 'is' : 'are'} set`,
  );
}
