/**
 * Pure rendering of resources for `weft get`: a kubectl-like table, YAML or JSON. No I/O and no
 * clock: the caller passes `now`, so the output is checked against golden files.
 */
import { stringify } from 'yaml';
import type { Resource, ResourceKind, ServiceSpec, WorkloadSpec } from '../store/resource.js';
import type {
  AuthorizationPolicySpec,
  NamespaceSpec,
  ServerSelector,
  ServerSpec,
} from '../store/resource-policy.js';

export const OUTPUT_FORMATS = ['table', 'wide', 'yaml', 'json'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

interface Column {
  readonly header: string;
  readonly value: (r: Resource) => string;
}

/** The kind-specific columns, after NAMESPACE and NAME and before AGE; `wide` ones only with -o wide. */
const KIND_COLUMNS: Readonly<Record<ResourceKind, { normal: Column[]; wide: Column[] }>> = {
  Service: { normal: [{ header: 'PORTS', value: (r) => servicePorts(r.spec as ServiceSpec) }], wide: [] },
  Workload: {
    normal: [
      { header: 'SERVICE', value: (r) => (r.spec as WorkloadSpec).service },
      { header: 'ADDRESS', value: (r) => workloadAddress(r.spec as WorkloadSpec) },
    ],
    wide: [{ header: 'IDENTITY', value: (r) => (r.spec as WorkloadSpec).identity ?? '<none>' }],
  },
  Server: {
    normal: [
      { header: 'SELECTOR', value: (r) => serverSelector((r.spec as ServerSpec).selector) },
      { header: 'PORT', value: (r) => String((r.spec as ServerSpec).port) },
      { header: 'PROTOCOL', value: (r) => (r.spec as ServerSpec).proxyProtocol ?? 'unknown' },
      // The compiler's default when absent (docs/policy.md).
      { header: 'ACCESS', value: (r) => (r.spec as ServerSpec).accessPolicy ?? 'deny' },
    ],
    wide: [],
  },
  AuthorizationPolicy: {
    normal: [
      { header: 'TARGET', value: (r) => policyTarget(r.spec as AuthorizationPolicySpec) },
      { header: 'FROM', value: (r) => policyFrom(r.spec as AuthorizationPolicySpec) },
    ],
    wide: [{ header: 'HTTP', value: (r) => policyHttp(r.spec as AuthorizationPolicySpec) }],
  },
  HTTPRoute: { normal: [], wide: [] },
  GRPCRoute: { normal: [], wide: [] },
  Profile: { normal: [], wide: [] },
  Namespace: {
    normal: [
      {
        header: 'DEFAULT-POLICY',
        value: (r) => (r.spec as NamespaceSpec).defaultInboundPolicy ?? '<mesh default>',
      },
    ],
    wide: [],
  },
};

/** `service=books`, `workload=books-0`, both comma-separated, or `<all>` for `{}`. */
function serverSelector(sel: ServerSelector): string {
  const parts = [];
  if (sel.service !== undefined) parts.push(`service=${sel.service}`);
  if (sel.workload !== undefined) parts.push(`workload=${sel.workload}`);
  return parts.length > 0 ? parts.join(',') : '<all>';
}

function policyTarget(spec: AuthorizationPolicySpec): string {
  return `${spec.targetRef.kind}/${spec.targetRef.name}`;
}

/**
 * One entry per client rule, joined by `|` (any rule allows): who (the identity, `.../<suffix>`,
 * `N identities`, `unauthenticated`, or `anyone` when the rule names no identity: docs/policy.md)
 * and, with networks, ` in <cidr>` or ` in N networks`.
 */
function policyFrom(spec: AuthorizationPolicySpec): string {
  if (spec.from.length === 0) return '<nobody>';
  return spec.from
    .map((f) => {
      const ids = [...(f.identities ?? []), ...(f.identitySuffixes ?? []).map((s) => `.../${s}`)];
      let who = f.unauthenticated ? 'unauthenticated' : 'anyone';
      if (ids.length > 0) who = ids.length === 1 ? ids[0] : `${ids.length} identities`;
      const nets = f.networks ?? [];
      if (nets.length === 0) return who;
      return `${who} in ${nets.length === 1 ? nets[0].cidr : `${nets.length} networks`}`;
    })
    .join('|');
}

function policyHttp(spec: AuthorizationPolicySpec): string {
  if (!spec.http || spec.http.length === 0) return '<all>';
  return spec.http
    .map((m) => {
      const path = m.path?.exact ?? (m.path?.prefix !== undefined ? `${m.path.prefix}*` : '*');
      return m.methods && m.methods.length > 0 ? `${m.methods.join(',')} ${path}` : path;
    })
    .join('|');
}

const LABELS: Column = { header: 'LABELS', value: (r) => labels(r) };

/**
 * A table of `items` (all of `kind`): NAMESPACE NAME, the kind's columns, AGE; `wide` adds the
 * kind's wide columns and LABELS. Columns are separated by at least three spaces, like kubectl.
 * An empty list renders as an empty string (the caller says "no resources found").
 */
export function renderTable(kind: ResourceKind, items: readonly Resource[], now: Date, wide = false): string {
  if (items.length === 0) return '';
  const cols: Column[] = [
    { header: 'NAMESPACE', value: (r) => r.metadata.namespace },
    { header: 'NAME', value: (r) => r.metadata.name },
    ...KIND_COLUMNS[kind].normal,
    { header: 'AGE', value: (r) => age(r.metadata.creationTimestamp, now) },
    ...(wide ? [...KIND_COLUMNS[kind].wide, LABELS] : []),
  ];
  const rows = [cols.map((c) => c.header), ...items.map((r) => cols.map((c) => c.value(r)))];
  const widths = cols.map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  return rows
    .map(
      (row) =>
        `${row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] + 3))).join('')}\n`,
    )
    .join('');
}

/** One YAML document per resource, separated by `---`: the output can be applied again. */
export function renderYaml(items: readonly Resource[]): string {
  return items.map((r) => stringify(r, { lineWidth: 0 })).join('---\n');
}

/** A single resource as a JSON object, or a list as `{ "kind": "List", "items": [...] }`. */
export function renderJson(items: readonly Resource[] | Resource): string {
  const value = Array.isArray(items) ? { kind: 'List', items } : items;
  return `${JSON.stringify(value, null, 2)}\n`;
}

/** `80/http,7002/grpc` (a port without a protocol shows alone). */
export function servicePorts(spec: ServiceSpec): string {
  return spec.ports
    .map((p) => (p.protocol === undefined ? `${p.port}` : `${p.port}/${p.protocol}`))
    .join(',');
}

function workloadAddress(spec: WorkloadSpec): string {
  if (spec.port === undefined) return spec.address;
  return spec.address.includes(':') ? `[${spec.address}]:${spec.port}` : `${spec.address}:${spec.port}`;
}

function labels(r: Resource): string {
  const entries = Object.entries(r.metadata.labels ?? {});
  return entries.length === 0 ? '<none>' : entries.map(([k, v]) => `${k}=${v}`).join(',');
}

/**
 * The age of a resource created at `timestamp`, the way kubectl shows it: `45s`, `5m30s`, `95m`,
 * `5h30m`, `40h`, `3d5h`, `400d`, `2y10d`.
 */
export function age(timestamp: string | undefined, now: Date): string {
  const created = timestamp === undefined ? Number.NaN : Date.parse(timestamp);
  if (Number.isNaN(created)) return '<unknown>';
  const s = Math.max(0, Math.floor((now.getTime() - created) / 1000));
  const m = Math.floor(s / 60);
  const h = Math.floor(m / 60);
  const d = Math.floor(h / 24);
  const withRest = (big: string, rest: number, unit: string) => (rest === 0 ? big : `${big}${rest}${unit}`);
  if (s < 120) return `${s}s`;
  if (m < 10) return withRest(`${m}m`, s % 60, 's');
  if (m < 180) return `${m}m`;
  if (h < 8) return withRest(`${h}h`, m % 60, 'm');
  if (h < 48) return `${h}h`;
  if (h < 192) return withRest(`${d}d`, h % 24, 'h');
  if (d < 365 * 2) return `${d}d`;
  const y = Math.floor(d / 365);
  return withRest(`${y}y`, d % 365, 'd');
}
