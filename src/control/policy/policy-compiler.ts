/**
 * The translator tier of Policy: from the stored Server, AuthorizationPolicy and Namespace
 * resources (an in-memory PolicyIndex) to the InboundPolicy of one workload, the message the
 * proxy evaluates with src/lib/authz.ts. Pure and deterministic: the same index and workload
 * always compile to the same policy (servers by port, authorizations by name), so a change can be
 * detected by comparing two compilations.
 */
import type {
  AuthzClient,
  AuthzHttpMatch,
  CompiledServer,
  DefaultPolicy,
  InboundPolicy,
} from '../../lib/authz.js';
import type { Resource } from '../../store/resource.js';

/** The policy resources by namespace, then name (Namespaces by their own name). */
export interface PolicyIndex {
  /** Workloads, to find those of a proxy that names only its identity. */
  readonly workloads: ReadonlyMap<string, ReadonlyMap<string, Resource<'Workload'>>>;
  readonly servers: ReadonlyMap<string, ReadonlyMap<string, Resource<'Server'>>>;
  readonly authorizations: ReadonlyMap<string, ReadonlyMap<string, Resource<'AuthorizationPolicy'>>>;
  readonly namespaces: ReadonlyMap<string, Resource<'Namespace'>>;
}

/** Which workload asks: its namespace, the Service it serves and (optionally) its Workload name. */
export interface WorkloadRef {
  readonly namespace: string;
  /** '' when unknown. */
  readonly service: string;
  /** '' when unknown. */
  readonly workload: string;
  /**
   * The workload's SPIFFE ID, '' when unknown. With neither service nor workload, the Workloads
   * of the namespace whose spec.identity is this stand for the proxy (a `weft run` proxy knows
   * its identity before its Workload is registered).
   */
  readonly identity: string;
  /** Only these ports; empty: all. */
  readonly ports: readonly number[];
}

/** What Server selectors are matched against: a Service and a Workload name ('' for unknown). */
export interface Selectable {
  readonly service: string;
  readonly workload: string;
}

/**
 * How specific a Server's selector is for `w`: 2 names the workload, 1 its service, 0 selects
 * the whole namespace; undefined when it does not select `w`. A more specific Server wins a port.
 */
export function selectorRank(s: Resource<'Server'>, w: Selectable): number | undefined {
  const { service, workload } = s.spec.selector;
  if (workload !== undefined && workload !== w.workload) return undefined;
  if (service !== undefined && service !== w.service) return undefined;
  return workload !== undefined ? 2 : service !== undefined ? 1 : 0;
}

/** The default for ports of `namespace` without a Server, and where it came from. */
export function defaultPolicyOf(
  index: PolicyIndex,
  namespace: string,
  meshDefault: DefaultPolicy,
): { policy: DefaultPolicy; source: string } {
  const ns = index.namespaces.get(namespace)?.spec.defaultInboundPolicy;
  return ns ? { policy: ns, source: `namespace ${namespace}` } : { policy: meshDefault, source: 'mesh' };
}

export function compileInboundPolicy(
  w: WorkloadRef,
  index: PolicyIndex,
  meshDefault: DefaultPolicy,
): InboundPolicy {
  const best = new Map<number, { rank: number; server: Resource<'Server'> }>();
  const as = selectablesOf(w, index);
  for (const s of index.servers.get(w.namespace)?.values() ?? []) {
    const rank = Math.max(-1, ...as.map((a) => selectorRank(s, a) ?? -1));
    if (rank < 0 || (w.ports.length > 0 && !w.ports.includes(s.spec.port))) continue;
    const held = best.get(s.spec.port);
    // Ties go to the first name in order, so the answer never depends on arrival order.
    if (!held || rank > held.rank || (rank === held.rank && s.metadata.name < held.server.metadata.name))
      best.set(s.spec.port, { rank, server: s });
  }
  const policies = [...(index.authorizations.get(w.namespace)?.values() ?? [])].sort((a, b) =>
    a.metadata.name < b.metadata.name ? -1 : 1,
  );
  const servers: CompiledServer[] = [...best.values()]
    .sort((a, b) => a.server.spec.port - b.server.spec.port)
    .map(({ server }) => ({
      name: server.metadata.name,
      port: server.spec.port,
      proxyProtocol: server.spec.proxyProtocol ?? 'unknown',
      accessPolicy: server.spec.accessPolicy ?? 'deny',
      authorizations: policies.filter((p) => targets(p, server)).map(compileAuthorization),
    }));
  const d = defaultPolicyOf(index, w.namespace, meshDefault);
  return { namespace: w.namespace, defaultPolicy: d.policy, defaultSource: d.source, servers };
}

/** What the proxy is, for Server selectors: what it said, else the Workloads of its identity. */
function selectablesOf(w: WorkloadRef, index: PolicyIndex): readonly Selectable[] {
  if (w.service !== '' || w.workload !== '' || w.identity === '') return [w];
  const mine = [...(index.workloads.get(w.namespace)?.values() ?? [])].filter(
    (r) => r.spec.identity === w.identity,
  );
  return mine.length > 0
    ? mine.map((r) => ({ service: r.spec.service, workload: r.metadata.name }))
    : [{ service: '', workload: '' }];
}

function targets(p: Resource<'AuthorizationPolicy'>, s: Resource<'Server'>): boolean {
  const ref = p.spec.targetRef;
  return ref.kind === 'Namespace' ? ref.name === s.metadata.namespace : ref.name === s.metadata.name;
}

function compileAuthorization(p: Resource<'AuthorizationPolicy'>) {
  const clients: AuthzClient[] = p.spec.from.map((f) => ({
    identities: f.identities ?? [],
    identitySuffixes: f.identitySuffixes ?? [],
    networks: (f.networks ?? []).map((n) => ({ cidr: n.cidr, except: n.except ?? [] })),
    unauthenticated: f.unauthenticated ?? false,
  }));
  const http: AuthzHttpMatch[] = (p.spec.http ?? []).map((m) => ({
    pathExact: m.path?.exact ?? '',
    pathPrefix: m.path?.prefix ?? '',
    methods: m.methods ?? [],
  }));
  return { name: p.metadata.name, namespace: p.metadata.namespace, clients, http };
}
