/**
 * How kinds are named outside the store: lower-case plurals in API URLs (`/api/v1/services`),
 * and the looser names people type on the command line (`service`, `svc`, `Service`). The one
 * table of those names, shared by the API server, its client and the CLI.
 */
import { RESOURCE_KINDS, type ResourceKind } from '../../store/resource.js';

/** The URL segment of each kind (lower-case plural, as in the Kubernetes API). */
export const PLURAL_OF: Readonly<Record<ResourceKind, string>> = Object.freeze({
  Service: 'services',
  Workload: 'workloads',
  Server: 'servers',
  AuthorizationPolicy: 'authorizationpolicies',
  HTTPRoute: 'httproutes',
  GRPCRoute: 'grpcroutes',
  Profile: 'profiles',
  Namespace: 'namespaces',
});

/** Short names accepted by the CLI, besides the kind, its singular and its plural. */
const SHORT_NAMES: Readonly<Record<string, ResourceKind>> = Object.freeze({
  svc: 'Service',
  wl: 'Workload',
  srv: 'Server',
  authz: 'AuthorizationPolicy',
  authzpolicy: 'AuthorizationPolicy',
  route: 'HTTPRoute',
  ns: 'Namespace',
});

const BY_PLURAL = new Map(RESOURCE_KINDS.map((k) => [PLURAL_OF[k], k]));

/** The kind whose URL segment is exactly `plural` (case-sensitive, as URLs are), if any. */
export function kindFromPlural(plural: string): ResourceKind | undefined {
  return BY_PLURAL.get(plural);
}

/** The kind a person meant by `name` (kind, singular, plural or short name; any case), if any. */
export function parseKindName(name: string): ResourceKind | undefined {
  const n = name.toLowerCase();
  for (const kind of RESOURCE_KINDS) if (n === kind.toLowerCase() || n === PLURAL_OF[kind]) return kind;
  return SHORT_NAMES[n];
}

/** The names `parseKindName` accepts, for help and error messages. */
export function kindNamesHelp(): string {
  return RESOURCE_KINDS.map((k) => PLURAL_OF[k]).join(', ');
}
