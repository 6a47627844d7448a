/**
 * The resource model of DESIGN.md §7: every piece of configuration is a resource with
 * apiVersion, kind, metadata and spec, in Kubernetes / Gateway API shapes so the same YAML works
 * on Kubernetes. This file owns the kinds and their validators; it knows nothing of storage.
 */
import { isIP } from 'node:net';
import {
  checkDnsLabel,
  checkPort,
  isHostName,
  isHostPort,
  isMap,
  type Raw,
  type Report,
  rejectUnknown,
} from './resource-checks.js';
import {
  type AuthorizationPolicySpec,
  type NamespaceSpec,
  type ServerSpec,
  validateAuthorizationPolicySpec,
  validateNamespaceSpec,
  validateServerSpec,
} from './resource-policy.js';
import { type ResourceProblem, ValidationError } from './store-error.js';

export type { AuthorizationPolicySpec, NamespaceSpec, ServerSpec };

/** Protocol hint of a service port: `opaque` is proxied as plain TCP, never parsed. */
export type PortProtocol = 'http' | 'grpc' | 'opaque';

export interface ServicePort {
  readonly port: number;
  readonly protocol?: PortProtocol;
}

/** A logical destination that clients address by name. */
export interface ServiceSpec {
  readonly ports: readonly ServicePort[];
}

/** One running instance (endpoint) of a Service. */
export interface WorkloadSpec {
  /** Name of the Service (same namespace) this workload serves. */
  readonly service: string;
  /** IP address or host name where the workload (or its inbound proxy) listens. */
  readonly address: string;
  readonly port?: number;
  /** Expected TLS identity of the workload's proxy. */
  readonly identity?: string;
  /**
   * `host:port` of the admin listener of the workload's proxy. When set, the control plane
   * probes its `GET /live` and leaves the workload out of discovery while it fails (a proxy that
   * died without deregistering); when absent the workload is always an endpoint.
   */
  readonly adminAddress?: string;
}

/** Spec of a kind whose fields are not validated yet (arrives with its own issue). */
export type UncheckedSpec = Readonly<Record<string, unknown>>;

/** The spec type of each kind; the keys are the closed list of kinds. */
export interface SpecByKind {
  Service: ServiceSpec;
  Workload: WorkloadSpec;
  Server: ServerSpec;
  AuthorizationPolicy: AuthorizationPolicySpec;
  HTTPRoute: UncheckedSpec;
  GRPCRoute: UncheckedSpec;
  Profile: UncheckedSpec;
  /** Per-namespace settings (cluster-scoped: stored under namespace `default`). */
  Namespace: NamespaceSpec;
}

export type ResourceKind = keyof SpecByKind;

/** Store-owned fields (resourceVersion, uid, creationTimestamp) are set by the store on apply. */
export interface ObjectMeta {
  readonly name: string;
  readonly namespace: string;
  /** Decimal string, increasing with every change in the store (compare with compareVersions). */
  readonly resourceVersion?: string;
  readonly uid?: string;
  /** RFC 3339 time of creation. */
  readonly creationTimestamp?: string;
  readonly labels?: Readonly<Record<string, string>>;
}

export interface Resource<K extends ResourceKind = ResourceKind> {
  readonly apiVersion: string;
  readonly kind: K;
  readonly metadata: ObjectMeta;
  readonly spec: SpecByKind[K];
}

export const WEFT_API_VERSION = 'weft.io/v1alpha1';
export const GATEWAY_API_VERSION = 'gateway.networking.k8s.io/v1';
export const DEFAULT_NAMESPACE = 'default';

/** The apiVersion each kind must carry. */
export const API_VERSION_OF: Readonly<Record<ResourceKind, string>> = Object.freeze({
  Service: WEFT_API_VERSION,
  Workload: WEFT_API_VERSION,
  Server: WEFT_API_VERSION,
  AuthorizationPolicy: WEFT_API_VERSION,
  Profile: WEFT_API_VERSION,
  HTTPRoute: GATEWAY_API_VERSION,
  GRPCRoute: GATEWAY_API_VERSION,
  Namespace: WEFT_API_VERSION,
});

export const RESOURCE_KINDS = Object.freeze(Object.keys(API_VERSION_OF) as ResourceKind[]);

export function isResourceKind(s: unknown): s is ResourceKind {
  return typeof s === 'string' && Object.hasOwn(API_VERSION_OF, s);
}

/** A path into a resource, e.g. ['spec', 'ports', 0, 'port']. */
export type FieldPath = readonly (string | number)[];

/** A problem found by a validator, located by field path (files and lines are added later). */
export interface FieldProblem {
  readonly path: FieldPath;
  readonly message: string;
}

/** Formats a field path as `spec.ports[0].port`. */
export function formatFieldPath(path: FieldPath): string {
  return path.map((s, i) => (typeof s === 'number' ? `[${s}]` : i === 0 ? s : `.${s}`)).join('');
}

/** The result of validation: a normalized, deeply frozen resource, or every problem found. */
export type Validated = { ok: true; resource: Resource } | { ok: false; problems: readonly FieldProblem[] };

const PROTOCOLS: readonly PortProtocol[] = ['http', 'grpc', 'opaque'];
const RESOURCE_FIELDS = new Set(['apiVersion', 'kind', 'metadata', 'spec', 'status']);

/**
 * Validates an untrusted value (parsed YAML or JSON) as a resource. Fills defaults (namespace
 * "default"), keeps only the known metadata fields (others, such as annotations, and a top-level
 * `status` as exported from Kubernetes, are dropped), and returns a deeply frozen copy; never
 * throws. Store-owned metadata fields are kept as given (the store decides what to do with them).
 */
export function validateResource(raw: unknown): Validated {
  const problems: FieldProblem[] = [];
  const report: Report = (path, message) => problems.push({ path, message });
  if (!isMap(raw)) {
    report([], 'a resource must be a mapping with apiVersion, kind, metadata and spec');
    return { ok: false, problems };
  }
  for (const key of Object.keys(raw)) if (!RESOURCE_FIELDS.has(key)) report([key], 'unknown field');
  const kind = raw.kind;
  if (!isResourceKind(kind)) {
    report(['kind'], `must be one of ${RESOURCE_KINDS.join(', ')}`);
  } else if (raw.apiVersion !== API_VERSION_OF[kind]) {
    report(['apiVersion'], `must be ${API_VERSION_OF[kind]} for kind ${kind}`);
  }
  const metadata = validateMetadata(raw.metadata, report);
  if (
    kind === 'Namespace' &&
    isMap(raw.metadata) &&
    (raw.metadata.namespace ?? DEFAULT_NAMESPACE) !== DEFAULT_NAMESPACE
  )
    report(
      ['metadata', 'namespace'],
      `a Namespace is cluster-scoped: omit metadata.namespace (stored as ${DEFAULT_NAMESPACE})`,
    );
  let spec: unknown;
  if (!isMap(raw.spec)) report(['spec'], 'must be a mapping');
  else if (isResourceKind(kind)) spec = SPEC_VALIDATORS[kind](raw.spec, report, metadata);
  if (problems.length > 0 || !isResourceKind(kind) || metadata === undefined) return { ok: false, problems };
  const resource = { apiVersion: API_VERSION_OF[kind], kind, metadata, spec } as Resource;
  return { ok: true, resource: deepFreeze(structuredClone(resource)) };
}

/** Like validateResource, but throws a ValidationError (code WEFT_ERR_INVALID_RESOURCE). */
export function checkResource(raw: unknown): Resource {
  const v = validateResource(raw);
  if (v.ok) return v.resource;
  throw new ValidationError(v.problems.map(toResourceProblem));
}

export function toResourceProblem(p: FieldProblem): ResourceProblem {
  return { path: formatFieldPath(p.path), message: p.message };
}

/** `Kind namespace/name`, the way errors and logs name a resource. */
export function describeResource(r: { kind: string; metadata: { namespace: string; name: string } }): string {
  return `${r.kind} ${r.metadata.namespace}/${r.metadata.name}`;
}

function validateMetadata(raw: unknown, report: Report): ObjectMeta | undefined {
  if (!isMap(raw)) {
    report(['metadata'], 'must be a mapping with at least a name');
    return undefined;
  }
  const name = raw.name;
  checkDnsLabel(name, ['metadata', 'name'], report);
  const namespace = raw.namespace ?? DEFAULT_NAMESPACE;
  checkDnsLabel(namespace, ['metadata', 'namespace'], report);
  const meta: Record<string, unknown> = { name, namespace };
  for (const key of ['resourceVersion', 'uid', 'creationTimestamp'] as const) {
    const v = raw[key];
    if (v === undefined) continue;
    if (key === 'resourceVersion' && typeof v === 'number' && Number.isSafeInteger(v)) meta[key] = String(v);
    else if (typeof v === 'string') meta[key] = v;
    else report(['metadata', key], 'must be a string');
  }
  if (typeof meta.resourceVersion === 'string' && !isVersion(meta.resourceVersion))
    report(['metadata', 'resourceVersion'], 'must be a decimal number');
  if (raw.labels !== undefined) {
    if (!isMap(raw.labels)) report(['metadata', 'labels'], 'must be a mapping of strings');
    else {
      for (const [k, v] of Object.entries(raw.labels))
        if (typeof v !== 'string') report(['metadata', 'labels', k], 'must be a string');
      meta.labels = raw.labels;
    }
  }
  return meta as unknown as ObjectMeta;
}

/** Validates and normalizes a spec; `metadata` is undefined when it was itself invalid. */
type SpecValidator = (spec: Raw, report: Report, metadata: ObjectMeta | undefined) => unknown;

const SPEC_VALIDATORS: Readonly<Record<ResourceKind, SpecValidator>> = {
  Service: validateServiceSpec,
  Workload: validateWorkloadSpec,
  Server: validateServerSpec,
  AuthorizationPolicy: validateAuthorizationPolicySpec,
  Namespace: validateNamespaceSpec,
  // The shapes of these kinds arrive with the routing and profile issues; until then any
  // mapping is stored as given, so files written for Kubernetes load unchanged.
  HTTPRoute: (spec) => spec,
  GRPCRoute: (spec) => spec,
  Profile: (spec) => spec,
};

function validateServiceSpec(spec: Raw, report: Report): ServiceSpec {
  rejectUnknown(spec, ['ports'], ['spec'], report);
  const ports = spec.ports;
  if (!Array.isArray(ports) || ports.length === 0) {
    report(['spec', 'ports'], 'must be a non-empty list of { port, protocol? }');
    return spec as unknown as ServiceSpec;
  }
  const seen = new Map<unknown, number>();
  for (const [i, p] of ports.entries()) {
    const at = ['spec', 'ports', i];
    if (!isMap(p)) {
      report(at, 'must be a mapping { port, protocol? }');
      continue;
    }
    rejectUnknown(p, ['port', 'protocol'], at, report);
    checkPort(p.port, [...at, 'port'], report);
    if (p.protocol !== undefined && !PROTOCOLS.includes(p.protocol as PortProtocol))
      report([...at, 'protocol'], `must be one of ${PROTOCOLS.join(', ')}`);
    const first = seen.get(p.port);
    if (first !== undefined) report([...at, 'port'], `duplicates spec.ports[${first}]`);
    else seen.set(p.port, i);
  }
  return spec as unknown as ServiceSpec;
}

function validateWorkloadSpec(spec: Raw, report: Report): WorkloadSpec {
  rejectUnknown(spec, ['service', 'address', 'port', 'identity', 'adminAddress'], ['spec'], report);
  checkDnsLabel(spec.service, ['spec', 'service'], report);
  const address = spec.address;
  if (typeof address !== 'string' || (isIP(address) === 0 && !isHostName(address)))
    report(['spec', 'address'], 'must be an IP address or a host name');
  if (spec.port !== undefined) checkPort(spec.port, ['spec', 'port'], report);
  if (spec.identity !== undefined && (typeof spec.identity !== 'string' || spec.identity === ''))
    report(['spec', 'identity'], 'must be a non-empty string');
  if (spec.adminAddress !== undefined && !isHostPort(spec.adminAddress))
    report(['spec', 'adminAddress'], "must be host:port (the admin listener of the workload's proxy)");
  return spec as unknown as WorkloadSpec;
}

/** True for a well-formed resourceVersion: a decimal number without leading zeros. */
export function isVersion(s: string): boolean {
  return /^(0|[1-9][0-9]{0,15})$/.test(s);
}

/** Freezes `v` and everything reachable from it; returns `v`. */
export function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const child of Object.values(v)) deepFreeze(child);
  }
  return v;
}

/** Orders two well-formed resourceVersions (see isVersion): negative, zero or positive like a comparator. */
export function compareVersions(a: string, b: string): number {
  return a.length !== b.length ? a.length - b.length : a < b ? -1 : a > b ? 1 : 0;
}
