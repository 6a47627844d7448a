/**
 * The inbound authorization evaluator (docs/policy.md), the ONE implementation shared by the
 * proxy (which enforces it) and the control plane / `weft policy explain` (which explains it), so
 * an explanation can never disagree with what a proxy does.
 *
 * Input is an InboundPolicy as compiled by the control plane (the same shape travels in
 * proto/policy.proto and the JSON API). Order of evaluation for one port:
 *   1. the port has a Server → its authorizations, in order; the first that matches allows.
 *      None matches → the Server's accessPolicy (default `deny`).
 *   2. no Server → the workload's default policy (namespace default, else mesh default).
 * A default policy `all-unauthenticated` allows anyone, `all-authenticated` any client with a
 * verified identity, `deny` no one, and `audit` allows everyone but reports the request as a
 * would-be denial (verdict `audit-deny`).
 */
import {
  compileIdentityPattern,
  compileNetwork,
  type HttpMatchSpec,
  httpMismatch,
  type IdentityPattern,
  type NetworkMatcher,
  type ParsedAddr,
  parseAddr,
} from './authz-match.js';

export const DEFAULT_POLICIES = ['all-unauthenticated', 'all-authenticated', 'deny', 'audit'] as const;
export type DefaultPolicy = (typeof DEFAULT_POLICIES)[number];

export const PROXY_PROTOCOLS = ['HTTP/1', 'HTTP/2', 'gRPC', 'opaque', 'unknown'] as const;
export type ProxyProtocol = (typeof PROXY_PROTOCOLS)[number];

export function isDefaultPolicy(s: unknown): s is DefaultPolicy {
  return typeof s === 'string' && (DEFAULT_POLICIES as readonly string[]).includes(s);
}

// The compiled policy: every field present ('' and [] for "unset"), as proto3 delivers it.

export interface AuthzNetwork {
  readonly cidr: string;
  readonly except: readonly string[];
}

/** One client rule: it matches when its identity condition and its network condition both hold. */
export interface AuthzClient {
  readonly identities: readonly string[];
  readonly identitySuffixes: readonly string[];
  readonly networks: readonly AuthzNetwork[];
  /** No identity needed (plaintext clients too). */
  readonly unauthenticated: boolean;
}

export type AuthzHttpMatch = HttpMatchSpec;

/** One AuthorizationPolicy as it applies to one Server. */
export interface CompiledAuthorization {
  readonly name: string;
  readonly namespace: string;
  /** Any rule matching is enough. */
  readonly clients: readonly AuthzClient[];
  /** Empty: every request and connection; else requests matching one of them (never opaque TCP). */
  readonly http: readonly AuthzHttpMatch[];
}

export interface CompiledServer {
  readonly name: string;
  readonly port: number;
  readonly proxyProtocol: ProxyProtocol;
  /** What happens when no authorization matches. */
  readonly accessPolicy: DefaultPolicy;
  readonly authorizations: readonly CompiledAuthorization[];
}

/** Everything one workload's inbound proxy needs to authorize its ports. */
export interface InboundPolicy {
  readonly namespace: string;
  /** For ports without a Server. */
  readonly defaultPolicy: DefaultPolicy;
  /** Where the default came from: `namespace <ns>`, `mesh`, or `proxy` (no control plane). */
  readonly defaultSource: string;
  readonly servers: readonly CompiledServer[];
}

/** Who is calling, as the inbound proxy knows it. */
export interface AuthzPeer {
  /** The connection is mesh mTLS and the client's certificate was verified. */
  readonly tls: boolean;
  /** The client's verified SPIFFE ID (only with tls). */
  readonly clientId?: string;
  /** The client's IP address. */
  readonly remoteAddr: string;
}

/** An HTTP request; absent for an opaque TCP connection. */
export interface AuthzRequest {
  readonly method: string;
  readonly path: string;
}

export type AuthzVerdict = 'allow' | 'deny' | 'audit-deny';

export interface AuthzDecision {
  readonly verdict: AuthzVerdict;
  /** Server name, or `default:<policy>` for a port without a Server. */
  readonly server: string;
  readonly port: number;
  /**
   * What decided: the AuthorizationPolicy name, or `default:<policy>` / `server:<accessPolicy>`
   * when a default did; '' for a denial.
   */
  readonly authorization: string;
  /** Index of the client rule that matched in `authorization`, else -1. */
  readonly rule: number;
  /** One sentence, safe for logs and the `Proxy-Status` details. */
  readonly reason: string;
}

/** An explanation: the decision and every step that led to it. */
export interface AuthzExplanation {
  readonly decision: AuthzDecision;
  readonly steps: readonly string[];
}

/** The policy compiled for fast decisions; build once per policy update. */
export interface Authorizer {
  readonly policy: InboundPolicy;
  /** The Server of `port`, if any. */
  server(port: number): CompiledServer | undefined;
  decide(port: number, peer: AuthzPeer, request?: AuthzRequest): AuthzDecision;
  explain(port: number, peer: AuthzPeer, request?: AuthzRequest): AuthzExplanation;
}

interface ClientMatcher {
  readonly unauthenticated: boolean;
  readonly identities: readonly IdentityPattern[];
  readonly networks: readonly NetworkMatcher[];
}

interface AuthzMatcher {
  readonly authz: CompiledAuthorization;
  readonly clients: readonly ClientMatcher[];
}

interface ServerMatcher {
  readonly server: CompiledServer;
  readonly authorizations: readonly AuthzMatcher[];
}

/** Compiles `policy`; malformed patterns or networks (which the validators refuse) never match. */
export function newAuthorizer(policy: InboundPolicy): Authorizer {
  const byPort = new Map<number, ServerMatcher>();
  for (const server of policy.servers) {
    if (byPort.has(server.port)) continue; // the compiler orders servers by precedence
    byPort.set(server.port, {
      server,
      authorizations: server.authorizations.map((authz) => ({
        authz,
        clients: authz.clients.map(compileClient),
      })),
    });
  }
  const evaluate = (port: number, peer: AuthzPeer, request: AuthzRequest | undefined, trace?: string[]) => {
    const s = byPort.get(port);
    if (!s) {
      trace?.push(
        `port ${port} has no Server: the ${policy.defaultSource} default ${policy.defaultPolicy} applies`,
      );
      return byDefault(policy.defaultPolicy, `default:${policy.defaultPolicy}`, 'default', port, peer, trace);
    }
    trace?.push(
      `port ${port} is Server ${s.server.name} (${s.server.proxyProtocol}, accessPolicy ${s.server.accessPolicy}, ` +
        `${s.authorizations.length} authorization${s.authorizations.length === 1 ? '' : 's'})`,
    );
    const caller = new Caller(peer, trace !== undefined);
    for (const a of s.authorizations) {
      const why = authzMismatch(a, caller, request);
      if (typeof why === 'number') {
        trace?.push(`AuthorizationPolicy ${a.authz.name}: matches (rule ${why})`);
        return decision(
          'allow',
          s.server.name,
          port,
          a.authz.name,
          why,
          `allowed by ${a.authz.name} rule ${why}`,
        );
      }
      trace?.push(`AuthorizationPolicy ${a.authz.name}: no match: ${why}`);
    }
    trace?.push(`no authorization matched: accessPolicy ${s.server.accessPolicy} applies`);
    return byDefault(s.server.accessPolicy, s.server.name, 'server', port, peer, trace);
  };
  return {
    policy,
    server: (port) => byPort.get(port)?.server,
    decide: (port, peer, request) => evaluate(port, peer, request),
    explain(port, peer, request) {
      const steps: string[] = [`client ${describePeer(peer)}`];
      const d = evaluate(port, peer, request, steps);
      return { decision: d, steps };
    },
  };
}

function compileClient(c: AuthzClient): ClientMatcher {
  const safe = <T>(f: () => T): T | undefined => {
    try {
      return f();
    } catch {
      return undefined;
    }
  };
  const never: NetworkMatcher = { source: '', contains: () => false, containsAddr: () => false };
  return {
    unauthenticated: c.unauthenticated,
    identities: [
      ...c.identities.map((p) => compileIdentityPattern(p, true)),
      ...c.identitySuffixes.map((p) => compileIdentityPattern(p, false)),
    ],
    networks: c.networks.map((n) => safe(() => compileNetwork(n.cidr, n.except)) ?? never),
  };
}

/**
 * The index of the first matching client rule, or why none matched. The reasons are only spelled
 * out while explaining (`caller.explaining`); deciding gets the constant MISS, so the proxy's hot
 * path builds no strings.
 */
function authzMismatch(a: AuthzMatcher, caller: Caller, request: AuthzRequest | undefined): number | string {
  if (a.authz.http.length > 0) {
    if (!request) return 'it has HTTP matches, which never apply to opaque TCP';
    if (!a.authz.http.some((m) => httpMismatch(m, request.method, request.path, false) === undefined))
      return caller.explaining
        ? a.authz.http.map((m) => httpMismatch(m, request.method, request.path, true)).join('; ')
        : MISS;
  }
  if (a.clients.length === 0) return 'it has no client rules';
  const misses: string[] = [];
  for (const [i, c] of a.clients.entries()) {
    const why = clientMismatch(c, caller);
    if (why === undefined) return i;
    if (caller.explaining) misses.push(`rule ${i}: ${why}`);
  }
  return caller.explaining ? misses.join('; ') : MISS;
}

/** The reason of every mismatch while deciding (not explaining). */
const MISS = 'no match';

function clientMismatch(c: ClientMatcher, caller: Caller): string | undefined {
  const id = caller.id;
  if (!c.unauthenticated && c.identities.length > 0) {
    if (id === '') return 'the client has no verified identity';
    const segments = caller.segments();
    if (!c.identities.some((p) => p.matchesSegments(segments)))
      return caller.explaining
        ? `identity ${id} is not one of ${c.identities.map((p) => p.source).join(', ')}`
        : MISS;
  }
  if (c.networks.length > 0) {
    const addr = caller.addr();
    if (!addr || !c.networks.some((n) => n.containsAddr(addr)))
      return caller.explaining
        ? `address ${caller.peer.remoteAddr} is not in ${c.networks.map((n) => n.source).join(', ')}`
        : MISS;
  }
  return undefined;
}

/** The peer of one decision, with its identity split and its address parsed at most once. */
class Caller {
  readonly id: string;
  #segments: readonly string[] | undefined;
  #addr: ParsedAddr | null | undefined;

  constructor(
    readonly peer: AuthzPeer,
    readonly explaining: boolean,
  ) {
    this.id = peer.tls ? (peer.clientId ?? '') : '';
  }

  segments(): readonly string[] {
    this.#segments ??= this.id.split('/');
    return this.#segments;
  }

  addr(): ParsedAddr | null {
    if (this.#addr === undefined) this.#addr = parseAddr(this.peer.remoteAddr) ?? null;
    return this.#addr;
  }
}

function byDefault(
  policy: DefaultPolicy,
  server: string,
  kind: 'default' | 'server',
  port: number,
  peer: AuthzPeer,
  trace: string[] | undefined,
): AuthzDecision {
  const name = `${kind}:${policy}`;
  const where = kind === 'default' ? `port ${port}` : `Server ${server}`;
  switch (policy) {
    case 'all-unauthenticated':
      return decision('allow', server, port, name, -1, `${where} allows all clients (${policy})`);
    case 'all-authenticated':
      if (peer.tls && peer.clientId)
        return decision('allow', server, port, name, -1, `${where} allows authenticated clients`);
      trace?.push('the client is not authenticated (no verified mesh identity)');
      return decision('deny', server, port, '', -1, `${where} requires an authenticated client (${policy})`);
    case 'audit':
      return decision(
        'audit-deny',
        server,
        port,
        name,
        -1,
        `${where} has no authorization for this client (audit: allowed)`,
      );
    default:
      return decision('deny', server, port, '', -1, `${where} has no authorization for this client`);
  }
}

function decision(
  verdict: AuthzVerdict,
  server: string,
  port: number,
  authorization: string,
  rule: number,
  reason: string,
): AuthzDecision {
  return { verdict, server, port, authorization, rule, reason };
}

export function describePeer(peer: AuthzPeer): string {
  const who = peer.tls && peer.clientId ? peer.clientId : 'unauthenticated';
  return `${who} from ${peer.remoteAddr}${peer.tls ? ' (mTLS)' : ' (no mTLS)'}`;
}

/** The namespace of `spiffe://<td>/ns/<namespace>/sa/<account>`, else undefined. */
export function namespaceOfSpiffeId(id: string): string | undefined {
  return /^spiffe:\/\/[^/]+\/ns\/([^/]+)\/sa\/[^/]+$/.exec(id)?.[1];
}

/** The policy of a proxy with no control plane: one default for every port. */
export function defaultOnlyPolicy(namespace: string, policy: DefaultPolicy, source: string): InboundPolicy {
  return { namespace, defaultPolicy: policy, defaultSource: source, servers: [] };
}
