import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { assertGolden } from '../../test/support/golden.js';
import type { Resource } from '../store/resource.js';
import { age, renderJson, renderTable, renderYaml } from './render-resources.js';

const NOW = new Date('2026-03-01T12:00:00Z');

const meta = (
  name: string,
  namespace: string,
  created: string,
  rv: string,
  labels?: Record<string, string>,
) => ({
  name,
  namespace,
  resourceVersion: rv,
  uid: `00000000-0000-4000-8000-00000000000${rv}`,
  creationTimestamp: created,
  ...(labels ? { labels } : {}),
});

const services: Resource[] = [
  {
    apiVersion: 'weft.io/v1alpha1',
    kind: 'Service',
    metadata: meta('authors', 'shop', '2026-03-01T11:59:15Z', '1'),
    spec: { ports: [{ port: 7001, protocol: 'http' }] },
  },
  {
    apiVersion: 'weft.io/v1alpha1',
    kind: 'Service',
    metadata: meta('books-catalogue', 'shop', '2026-02-27T06:00:00Z', '2', { tier: 'backend' }),
    spec: { ports: [{ port: 7002, protocol: 'grpc' }, { port: 9090 }] },
  },
];

const workloads: Resource[] = [
  {
    apiVersion: 'weft.io/v1alpha1',
    kind: 'Workload',
    metadata: meta('books-0', 'shop', '2026-03-01T09:30:00Z', '3'),
    spec: { service: 'books-catalogue', address: '127.0.0.1', port: 4143, identity: 'books.shop.weft' },
  },
  {
    apiVersion: 'weft.io/v1alpha1',
    kind: 'Workload',
    metadata: meta('books-1', 'shop', '2026-03-01T11:55:30Z', '4'),
    spec: { service: 'books-catalogue', address: '::1', port: 4144 },
  },
];

const route: Resource = {
  apiVersion: 'gateway.networking.k8s.io/v1',
  kind: 'HTTPRoute',
  metadata: meta('books-split', 'shop', '2025-01-01T00:00:00Z', '5'),
  spec: { parentRefs: [{ name: 'books-catalogue' }] },
};

const policyMeta = (kind: string, name: string, rv: string) => ({
  apiVersion: 'weft.io/v1alpha1',
  kind,
  metadata: meta(name, 'shop', '2026-03-01T11:00:00Z', rv),
});

const servers = [
  { ...policyMeta('Server', 'books-http', '6'), spec: { selector: { service: 'books' }, port: 7002 } },
  {
    ...policyMeta('Server', 'everything-tcp', '7'),
    spec: { selector: {}, port: 5432, proxyProtocol: 'opaque', accessPolicy: 'all-authenticated' },
  },
] as Resource[];

const authorizations = [
  {
    ...policyMeta('AuthorizationPolicy', 'books-readers', '8'),
    spec: {
      targetRef: { kind: 'Server', name: 'books-http' },
      from: [
        { identities: ['spiffe://weft.local/ns/shop/sa/web'] },
        { identitySuffixes: ['ns/ops/sa/*'] },
        { networks: [{ cidr: '10.0.0.0/8', except: ['10.1.0.0/16'] }], unauthenticated: true },
      ],
      http: [{ path: { prefix: '/books' }, methods: ['GET', 'HEAD'] }, { path: { exact: '/health' } }],
    },
  },
  {
    ...policyMeta('AuthorizationPolicy', 'shop-internal', '9'),
    spec: { targetRef: { kind: 'Namespace', name: 'shop' }, from: [{ networks: [{ cidr: '127.0.0.0/8' }] }] },
  },
] as Resource[];

const namespaces = [
  { ...policyMeta('Namespace', 'shop', '10'), spec: { defaultInboundPolicy: 'deny' } },
  { ...policyMeta('Namespace', 'ops', '11'), spec: {} },
] as Resource[];

describe('render resources', () => {
  it('renders the policy kinds: selector, port, protocol and access; target, clients and requests; defaults (golden)', () => {
    assertGolden('get-servers.txt', renderTable('Server', servers, NOW));
    assertGolden(
      'get-authorizationpolicies-wide.txt',
      renderTable('AuthorizationPolicy', authorizations, NOW, true),
    );
    assertGolden('get-namespaces.txt', renderTable('Namespace', namespaces, NOW));
  });

  it('renders tables with the kind columns (golden)', () => {
    assertGolden('get-services.txt', renderTable('Service', services, NOW));
    assertGolden('get-workloads.txt', renderTable('Workload', workloads, NOW));
    assertGolden('get-workloads-wide.txt', renderTable('Workload', workloads, NOW, true));
    assertGolden('get-httproutes.txt', renderTable('HTTPRoute', [route], NOW));
    assert.equal(renderTable('Service', [], NOW), '');
  });

  it('renders YAML documents that can be applied again, and JSON (golden)', () => {
    assertGolden('get-services.yaml', renderYaml(services));
    assertGolden('get-services.json', renderJson(services));
    assertGolden('get-workload.json', renderJson(workloads[0]));
    assert.equal(renderYaml([]), '');
  });

  it('shows ages the way kubectl does', () => {
    const ago = (s: number) => age(new Date(NOW.getTime() - s * 1000).toISOString(), NOW);
    assert.deepEqual(
      [
        0,
        45,
        119,
        150,
        300,
        600,
        5700,
        3 * 3600 + 60,
        7 * 3600,
        40 * 3600,
        3 * 86400 + 5 * 3600,
        4 * 86400,
        400 * 86400,
        1000 * 86400,
      ].map(ago),
      ['0s', '45s', '119s', '2m30s', '5m', '10m', '95m', '3h1m', '7h', '40h', '3d5h', '4d', '400d', '2y270d'],
    );
    assert.equal(age(undefined, NOW), '<unknown>');
    assert.equal(age('2026-03-01T12:00:05Z', NOW), '0s');
  });
});
