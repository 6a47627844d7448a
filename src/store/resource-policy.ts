/**
 * The policy kinds of DESIGN.md §6 (docs/policy.md): `Server` (a port of some workloads, its
 * protocol and what happens when no authorization matches), `AuthorizationPolicy` (who may call a
 * Server, or every Server of a namespace) and `Namespace` (the namespace's default inbound
 * policy). Stored as written; the control plane's policy compiler fills the defaults.
 */
import { DEFAULT_POLICIES, type DefaultPolicy, PROXY_PROTOCOLS, type ProxyProtocol } from '../lib/authz.js';
import { blockContains, identityPatternProblem, parseCidr } from '../lib/authz-match.js';
import type { FieldPath, ObjectMeta } from './resource.js';
import {
  checkDnsLabel,
  checkPort,
  isMap,
  type Raw,
  type Report,
  rejectUnknown,
  stringList,
} from './resource-checks.js';

/** Which workloads of the Server's namespace it selects; `{}` selects them all. */
export interface ServerSelector {
  /** Workloads serving this Service. */
  readonly service?: string;
  /** The one Workload of this name. */
  readonly workload?: string;
}

export interface ServerSpec {
  readonly selector: ServerSelector;
  /** The workload's port (the app port, or a port reached through the opaque transport). */
  readonly port: number;
  /** Default `unknown` (detected); `opaque` skips detection and authorizes connections. */
  readonly proxyProtocol?: ProxyProtocol;
  /** When no authorization matches; default `deny`. */
  readonly accessPolicy?: DefaultPolicy;
}

export interface PolicyTargetRef {
  readonly kind: 'Server' | 'Namespace';
  readonly name: string;
}

export interface AuthorizationPolicyNetwork {
  readonly cidr: string;
  readonly except?: readonly string[];
}

/** One client rule; its identity and network conditions must both hold. */
export interface AuthorizationPolicyFrom {
  readonly identities?: readonly string[];
  readonly identitySuffixes?: readonly string[];
  readonly networks?: readonly AuthorizationPolicyNetwork[];
  readonly unauthenticated?: boolean;
}

export interface AuthorizationPolicyHttpMatch {
  readonly path?: { readonly exact?: string; readonly prefix?: string };
  readonly methods?: readonly string[];
}

export interface AuthorizationPolicySpec {
  readonly targetRef: PolicyTargetRef;
  /** Any rule matching allows. */
  readonly from: readonly AuthorizationPolicyFrom[];
  /** Only these requests (never opaque connections); absent: everything. */
  readonly http?: readonly AuthorizationPolicyHttpMatch[];
}

export interface NamespaceSpec {
  /** For workload ports without a Server; absent: the mesh default. */
  readonly defaultInboundPolicy?: DefaultPolicy;
}

const METHOD = /^[A-Z]+$/;

export function validateServerSpec(spec: Raw, report: Report): ServerSpec {
  rejectUnknown(spec, ['selector', 'port', 'proxyProtocol', 'accessPolicy'], ['spec'], report);
  const sel = spec.selector;
  if (!isMap(sel))
    report(['spec', 'selector'], 'must be a mapping { service?, workload? } ({} selects every workload)');
  else {
    rejectUnknown(sel, ['service', 'workload'], ['spec', 'selector'], report);
    for (const k of ['service', 'workload'] as const)
      if (sel[k] !== undefined) checkDnsLabel(sel[k], ['spec', 'selector', k], report);
  }
  checkPort(spec.port, ['spec', 'port'], report);
  checkOneOf(spec.proxyProtocol, PROXY_PROTOCOLS, ['spec', 'proxyProtocol'], report);
  checkOneOf(spec.accessPolicy, DEFAULT_POLICIES, ['spec', 'accessPolicy'], report);
  return spec as unknown as ServerSpec;
}

export function validateNamespaceSpec(spec: Raw, report: Report): NamespaceSpec {
  rejectUnknown(spec, ['defaultInboundPolicy'], ['spec'], report);
  checkOneOf(spec.defaultInboundPolicy, DEFAULT_POLICIES, ['spec', 'defaultInboundPolicy'], report);
  return spec as unknown as NamespaceSpec;
}

export function validateAuthorizationPolicySpec(
  spec: Raw,
  report: Report,
  metadata: ObjectMeta | undefined,
): AuthorizationPolicySpec {
  rejectUnknown(spec, ['targetRef', 'from', 'http'], ['spec'], report);
  const ref = spec.targetRef;
  if (!isMap(ref)) report(['spec', 'targetRef'], 'must be a mapping { kind: Server|Namespace, name }');
  else {
    rejectUnknown(ref, ['kind', 'name', 'group'], ['spec', 'targetRef'], report);
    if (ref.kind !== 'Server' && ref.kind !== 'Namespace')
      report(['spec', 'targetRef', 'kind'], 'must be Server or Namespace');
    checkDnsLabel(ref.name, ['spec', 'targetRef', 'name'], report);
    if (
      ref.kind === 'Namespace' &&
      metadata &&
      typeof ref.name === 'string' &&
      ref.name !== metadata.namespace
    )
      report(
        ['spec', 'targetRef', 'name'],
        `a policy can only target its own namespace (${metadata.namespace})`,
      );
  }
  const from = spec.from;
  if (!Array.isArray(from) || from.length === 0)
    report(
      ['spec', 'from'],
      'must be a non-empty list of client rules { identities | identitySuffixes | networks | unauthenticated }',
    );
  else for (const [i, f] of from.entries()) checkFrom(f, ['spec', 'from', i], report);
  if (spec.http !== undefined) {
    if (!Array.isArray(spec.http) || spec.http.length === 0)
      report(
        ['spec', 'http'],
        'must be a non-empty list of { path?: { exact | prefix }, methods? } (omit it to match everything)',
      );
    else for (const [i, m] of spec.http.entries()) checkHttpMatch(m, ['spec', 'http', i], report);
  }
  return spec as unknown as AuthorizationPolicySpec;
}

function checkFrom(f: unknown, at: FieldPath, report: Report): void {
  if (!isMap(f)) {
    report(at, 'must be a mapping { identities | identitySuffixes | networks | unauthenticated }');
    return;
  }
  rejectUnknown(f, ['identities', 'identitySuffixes', 'networks', 'unauthenticated'], at, report);
  const ids = stringList(f.identities, [...at, 'identities'], report);
  const suffixes = stringList(f.identitySuffixes, [...at, 'identitySuffixes'], report);
  ids.forEach((p, j) => {
    const why = identityPatternProblem(p, true);
    if (why) report([...at, 'identities', j], why);
  });
  suffixes.forEach((p, j) => {
    const why = identityPatternProblem(p, false);
    if (why) report([...at, 'identitySuffixes', j], why);
  });
  if (f.unauthenticated !== undefined && typeof f.unauthenticated !== 'boolean')
    report([...at, 'unauthenticated'], 'must be true or false');
  if (f.unauthenticated === true && (ids.length > 0 || suffixes.length > 0))
    report(
      [...at, 'unauthenticated'],
      'contradicts identities/identitySuffixes in the same rule (use two rules)',
    );
  let networks = 0;
  if (f.networks !== undefined) {
    if (!Array.isArray(f.networks) || f.networks.length === 0)
      report([...at, 'networks'], 'must be a non-empty list of { cidr, except? }');
    else {
      networks = f.networks.length;
      for (const [j, n] of f.networks.entries()) checkNetwork(n, [...at, 'networks', j], report);
    }
  }
  if (ids.length === 0 && suffixes.length === 0 && networks === 0 && f.unauthenticated !== true)
    report(at, 'must allow someone: identities, identitySuffixes, networks or unauthenticated: true');
}

function checkNetwork(n: unknown, at: FieldPath, report: Report): void {
  if (!isMap(n)) {
    report(at, 'must be a mapping { cidr, except? }');
    return;
  }
  rejectUnknown(n, ['cidr', 'except'], at, report);
  const cidr = checkCidr(n.cidr, [...at, 'cidr'], report);
  const except = stringList(n.except, [...at, 'except'], report);
  except.forEach((e, k) => {
    const hole = checkCidr(e, [...at, 'except', k], report);
    if (cidr && hole && !blockContains(cidr, hole))
      report([...at, 'except', k], `must lie inside ${n.cidr as string}`);
  });
}

function checkCidr(v: unknown, at: FieldPath, report: Report): ReturnType<typeof parseCidr> | undefined {
  try {
    if (typeof v !== 'string') throw new Error('must be a CIDR block such as 10.0.0.0/8');
    return parseCidr(v);
  } catch (err) {
    report(at, (err as Error).message);
    return undefined;
  }
}

function checkHttpMatch(m: unknown, at: FieldPath, report: Report): void {
  if (!isMap(m)) {
    report(at, 'must be a mapping { path?: { exact | prefix }, methods? }');
    return;
  }
  rejectUnknown(m, ['path', 'methods'], at, report);
  if (m.path !== undefined) {
    const p = m.path;
    if (!isMap(p) || Object.keys(p).length !== 1 || (p.exact === undefined && p.prefix === undefined))
      report([...at, 'path'], 'must be { exact: /p } or { prefix: /p }');
    else {
      rejectUnknown(p, ['exact', 'prefix'], [...at, 'path'], report);
      const v = p.exact ?? p.prefix;
      if (typeof v !== 'string' || !v.startsWith('/'))
        report([...at, 'path', p.exact !== undefined ? 'exact' : 'prefix'], 'must start with /');
    }
  }
  stringList(m.methods, [...at, 'methods'], report).forEach((x, j) => {
    if (!METHOD.test(x)) report([...at, 'methods', j], 'must be an upper-case HTTP method such as GET');
  });
}

function checkOneOf(v: unknown, choices: readonly string[], at: FieldPath, report: Report): void {
  if (v !== undefined && !(typeof v === 'string' && choices.includes(v)))
    report(at, `must be one of ${choices.join(', ')}`);
}
