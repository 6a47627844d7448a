import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Update } from '../../../proto/destination.js';
import { checkResource, type Resource } from '../../store/resource.js';
import {
  diffEndpointSets,
  type EndpointSet,
  endpointSetOf,
  parseServiceAuthority,
  profileOf,
  serviceAuthorities,
  snapshotUpdate,
  UNKNOWN,
} from './endpoint-translator.js';

const service = (name: string, namespace: string, ports: { port: number; protocol?: string }[]) =>
  checkResource({
    apiVersion: 'weft.io/v1alpha1',
    kind: 'Service',
    metadata: { name, namespace },
    spec: { ports },
  }) as Resource<'Service'>;

const workload = (
  name: string,
  spec: { service: string; address: string; port?: number; identity?: string },
  namespace = 'default',
  labels?: Record<string, string>,
) =>
  checkResource({
    apiVersion: 'weft.io/v1alpha1',
    kind: 'Workload',
    metadata: { name, namespace, labels },
    spec,
  }) as Resource<'Workload'>;

const addrsOf = (u: Update) =>
  u.update === 'add'
    ? u.add.addrs.map((a) => a.addr)
    : u.update === 'remove'
      ? u.remove.addrs.map((a) => a.addr)
      : [];

describe('parseServiceAuthority', () => {
  it('accepts the three documented names', () => {
    assert.deepEqual(parseServiceAuthority('books:7002'), {
      namespace: 'default',
      name: 'books',
      port: 7002,
    });
    assert.deepEqual(parseServiceAuthority('books.shop:7002'), {
      namespace: 'shop',
      name: 'books',
      port: 7002,
    });
    assert.deepEqual(parseServiceAuthority('books.shop.svc.cluster.local:7002'), {
      namespace: 'shop',
      name: 'books',
      port: 7002,
    });
  });

  it('rejects addresses and names of other shapes', () => {
    for (const a of [
      '127.0.0.1:80',
      '[::1]:80',
      'a.b.c:80',
      'books.shop.svc:80',
      'Books:80',
      'books',
      'books:0',
    ])
      assert.equal(parseServiceAuthority(a), null, a);
  });

  it('round-trips every authority a Service answers to', () => {
    const svc = service('books', 'default', [{ port: 7002 }, { port: 9000 }]);
    const names = serviceAuthorities(svc);
    assert.deepEqual(names, [
      'books:7002',
      'books.default:7002',
      'books.default.svc.cluster.local:7002',
      'books:9000',
      'books.default:9000',
      'books.default.svc.cluster.local:9000',
    ]);
    for (const a of names) assert.equal(parseServiceAuthority(a)?.name, 'books');
    assert.ok(!serviceAuthorities(service('books', 'shop', [{ port: 1 }])).includes('books:1'));
  });
});

describe('endpointSetOf', () => {
  const books = service('books', 'default', [{ port: 7002 }, { port: 5432, protocol: 'opaque' }]);
  const ws = [
    workload(
      'books-0',
      {
        service: 'books',
        address: '127.0.0.1',
        port: 4143,
        identity: 'spiffe://weft.local/ns/default/sa/books',
      },
      'default',
      { version: 'v1' },
    ),
    workload('books-1', { service: 'books', address: '10.0.0.2' }),
    workload('authors-0', { service: 'authors', address: '10.0.0.3' }),
    workload('books-other-ns', { service: 'books', address: '10.0.0.4' }, 'shop'),
  ];

  it("selects the Service's workloads, with the port, identity, hint and labels", () => {
    const set = endpointSetOf({ namespace: 'default', name: 'books', port: 7002 }, books, ws);
    assert.equal(set.exists, true);
    assert.deepEqual(
      [...set.addrs.values()],
      [
        {
          addr: '127.0.0.1:4143',
          weight: 1,
          identity: 'spiffe://weft.local/ns/default/sa/books',
          protocolHint: 'h2',
          metricLabels: { version: 'v1', workload: 'books-0', namespace: 'default', service: 'books' },
        },
        {
          addr: '10.0.0.2:7002',
          weight: 1,
          identity: '',
          protocolHint: 'h2',
          metricLabels: { workload: 'books-1', namespace: 'default', service: 'books' },
        },
      ],
    );
  });

  it('marks endpoints of an opaque port opaque', () => {
    const set = endpointSetOf({ namespace: 'default', name: 'books', port: 5432 }, books, ws);
    assert.deepEqual(
      [...set.addrs.values()].map((a) => a.protocolHint),
      ['opaque', 'opaque'],
    );
  });

  it('is unknown without the Service or for a port it does not declare', () => {
    assert.equal(endpointSetOf({ namespace: 'default', name: 'books', port: 1 }, books, ws), UNKNOWN);
    assert.equal(endpointSetOf({ namespace: 'default', name: 'books', port: 7002 }, undefined, ws), UNKNOWN);
  });
});

describe('snapshotUpdate and diffEndpointSets', () => {
  const books = service('books', 'default', [{ port: 80 }]);
  const key = { namespace: 'default', name: 'books', port: 80 };
  const w0 = workload('b0', { service: 'books', address: '10.0.0.1' });
  const w1 = workload('b1', { service: 'books', address: '10.0.0.2' });
  const set = (...ws: Resource<'Workload'>[]): EndpointSet => endpointSetOf(key, books, ws);
  const empty = set();

  it('snapshots as one Add, or NoEndpoints saying whether the service exists', () => {
    assert.deepEqual(addrsOf(snapshotUpdate(set(w0, w1))), ['10.0.0.1:80', '10.0.0.2:80']);
    assert.deepEqual(snapshotUpdate(empty), { update: 'noEndpoints', noEndpoints: { exists: true } });
    assert.deepEqual(snapshotUpdate(UNKNOWN), { update: 'noEndpoints', noEndpoints: { exists: false } });
  });

  it('sends removals, then additions, and nothing when nothing changed', () => {
    const d = diffEndpointSets(set(w0), set(w1));
    assert.deepEqual(
      d.map((u) => [u.update, addrsOf(u)]),
      [
        ['remove', ['10.0.0.1:80']],
        ['add', ['10.0.0.2:80']],
      ],
    );
    assert.deepEqual(diffEndpointSets(set(w0, w1), set(w0, w1)), []);
  });

  it('re-adds an endpoint whose labels changed', () => {
    const relabelled = workload('b0', { service: 'books', address: '10.0.0.1' }, 'default', { v: '2' });
    const d = diffEndpointSets(set(w0), set(relabelled));
    assert.deepEqual(
      d.map((u) => [u.update, addrsOf(u)]),
      [['add', ['10.0.0.1:80']]],
    );
  });

  it('ends with NoEndpoints when the last endpoint goes or the service appears or vanishes', () => {
    assert.deepEqual(diffEndpointSets(set(w0), empty).at(-1), {
      update: 'noEndpoints',
      noEndpoints: { exists: true },
    });
    assert.deepEqual(diffEndpointSets(UNKNOWN, empty), [
      { update: 'noEndpoints', noEndpoints: { exists: true } },
    ]);
    assert.deepEqual(
      diffEndpointSets(set(w0), UNKNOWN).map((u) => u.update),
      ['remove', 'noEndpoints'],
    );
    assert.deepEqual(diffEndpointSets(UNKNOWN, UNKNOWN), []);
  });
});

describe('profileOf', () => {
  it('lists opaque ports and names the service', () => {
    const svc = service('db', 'shop', [{ port: 80 }, { port: 5432, protocol: 'opaque' }]);
    assert.deepEqual(profileOf({ namespace: 'shop', name: 'db', port: 5432 }, svc), {
      opaquePorts: [5432],
      opaque: true,
      fullyQualifiedName: 'db.shop.svc.cluster.local',
      routes: [],
    });
    assert.equal(profileOf({ namespace: 'shop', name: 'db', port: 80 }, svc).opaque, false);
    assert.deepEqual(profileOf(null, undefined), {
      opaquePorts: [],
      opaque: false,
      fullyQualifiedName: '',
      routes: [],
    });
  });
});
