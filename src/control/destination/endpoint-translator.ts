/**
 * The translator tier of Destination (like linkerd2's endpoint_translator.go): turns store
 * resources into what the wire speaks. Pure functions, no I/O, so every rule is unit-tested.
 *
 * Names a Service answers to, for Service `books` in namespace `shop` with port 7002:
 * - `books.shop:7002`, and `books.shop.svc.cluster.local:7002` (the Kubernetes name, so the
 *   same client configuration works on Kubernetes);
 * - `books:7002` only for namespace `default`: one host runs one flat namespace by default, and
 *   a bare name in any other namespace would be ambiguous without knowing who asks.
 * A port the Service does not declare is not part of it: the authority is unknown.
 *
 * Endpoints: every Workload whose spec.service names the Service (same namespace) is one
 * endpoint at `spec.address:(spec.port ?? service port)`. Workloads are registered with the
 * address of their inbound proxy, so every endpoint is meshed: protocol hint `opaque` for a port
 * declared opaque, else `h2`. Weight 1; metric labels are the Workload's labels plus
 * `workload`, `namespace` and `service` (exported by the proxy as `dst_<key>`).
 */

import type { DestinationProfile, Update, WeightedAddr } from '../../../proto/destination.js';
import { formatHostPort } from '../../lib/addr.js';
import type { Resource } from '../../store/resource.js';

/** Which Service port an authority names. */
export interface ServicePortKey {
  readonly namespace: string;
  readonly name: string;
  readonly port: number;
}

/** The endpoints of one authority as last computed: `exists` is false when the mesh does not know it. */
export interface EndpointSet {
  readonly exists: boolean;
  /** By address. */
  readonly addrs: ReadonlyMap<string, WeightedAddr>;
}

export const UNKNOWN: EndpointSet = Object.freeze({ exists: false, addrs: new Map<string, WeightedAddr>() });

const CLUSTER_SUFFIX = ['svc', 'cluster', 'local'];
const DEFAULT_NAMESPACE = 'default';
const DEFAULT_WEIGHT = 1;

/**
 * The Service port a normalized authority (`host:port`, lower case) names, or null when it
 * cannot name one (an IP address, a name of another shape).
 */
export function parseServiceAuthority(authority: string): ServicePortKey | null {
  const colon = authority.lastIndexOf(':');
  if (colon <= 0) return null;
  const port = Number(authority.slice(colon + 1));
  if (!Number.isInteger(port) || port < 1 || port > 65535) return null;
  const labels = authority.slice(0, colon).split('.');
  if (labels.some((l) => !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(l))) return null;
  if (labels.length === 1) return { namespace: DEFAULT_NAMESPACE, name: labels[0], port };
  if (labels.length === 2 && !/^\d+$/.test(labels[1])) return { namespace: labels[1], name: labels[0], port };
  if (labels.length === 5 && labels.slice(2).join('.') === CLUSTER_SUFFIX.join('.'))
    return { namespace: labels[1], name: labels[0], port };
  return null;
}

/** Every authority a Service answers to (see the file comment), for docs and tests. */
export function serviceAuthorities(service: Resource<'Service'>): string[] {
  const { name, namespace } = service.metadata;
  return service.spec.ports.flatMap(({ port }) => [
    ...(namespace === DEFAULT_NAMESPACE ? [`${name}:${port}`] : []),
    `${name}.${namespace}:${port}`,
    `${name}.${namespace}.${CLUSTER_SUFFIX.join('.')}:${port}`,
  ]);
}

/** The endpoint set of `key`: UNKNOWN unless `service` exists and declares the port. */
export function endpointSetOf(
  key: ServicePortKey,
  service: Resource<'Service'> | undefined,
  workloads: Iterable<Resource<'Workload'>>,
): EndpointSet {
  const port = service?.spec.ports.find((p) => p.port === key.port);
  if (!service || !port) return UNKNOWN;
  const hint = port.protocol === 'opaque' ? 'opaque' : 'h2';
  const addrs = new Map<string, WeightedAddr>();
  for (const w of workloads) {
    if (w.spec.service !== key.name || w.metadata.namespace !== key.namespace) continue;
    const addr = formatHostPort({ host: w.spec.address, port: w.spec.port ?? key.port });
    addrs.set(addr, {
      addr,
      weight: DEFAULT_WEIGHT,
      identity: w.spec.identity ?? '',
      protocolHint: hint,
      metricLabels: {
        ...w.metadata.labels,
        workload: w.metadata.name,
        namespace: w.metadata.namespace,
        service: key.name,
      },
    });
  }
  return { exists: true, addrs };
}

/** The first message of a stream: the whole state. */
export function snapshotUpdate(set: EndpointSet): Update {
  return set.addrs.size > 0
    ? { update: 'add', add: { addrs: [...set.addrs.values()] } }
    : { update: 'noEndpoints', noEndpoints: { exists: set.exists } };
}

/**
 * The messages that take a client from `prev` to `next`: removals, then additions (new or
 * changed entries), then NoEndpoints when `next` is empty and something changed (its set or its
 * existence). Empty when nothing changed.
 */
export function diffEndpointSets(prev: EndpointSet, next: EndpointSet): Update[] {
  const removed = [...prev.addrs.values()].filter((a) => !next.addrs.has(a.addr));
  const added = [...next.addrs.values()].filter((a) => !sameAddr(prev.addrs.get(a.addr), a));
  const out: Update[] = [];
  if (removed.length > 0) out.push({ update: 'remove', remove: { addrs: removed } });
  if (added.length > 0) out.push({ update: 'add', add: { addrs: added } });
  if (next.addrs.size === 0 && (removed.length > 0 || prev.exists !== next.exists))
    out.push({ update: 'noEndpoints', noEndpoints: { exists: next.exists } });
  return out;
}

function sameAddr(a: WeightedAddr | undefined, b: WeightedAddr): boolean {
  if (!a) return false;
  if (a.weight !== b.weight || a.identity !== b.identity || a.protocolHint !== b.protocolHint) return false;
  const ka = Object.keys(a.metricLabels);
  return (
    ka.length === Object.keys(b.metricLabels).length &&
    ka.every((k) => a.metricLabels[k] === b.metricLabels[k])
  );
}

/** The profile of `key`: defaults (nothing opaque, no name) when the Service is unknown. */
export function profileOf(
  key: ServicePortKey | null,
  service: Resource<'Service'> | undefined,
): DestinationProfile {
  if (!key || !service) return { opaquePorts: [], opaque: false, fullyQualifiedName: '', routes: [] };
  const opaquePorts = service.spec.ports.filter((p) => p.protocol === 'opaque').map((p) => p.port);
  return {
    opaquePorts,
    opaque: opaquePorts.includes(key.port),
    fullyQualifiedName: `${key.name}.${key.namespace}.${CLUSTER_SUFFIX.join('.')}`,
    routes: [],
  };
}
