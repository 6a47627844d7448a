import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkResource, type Resource } from '../../store/resource.js';
import { compileInboundPolicy, type PolicyIndex } from './policy-compiler.js';

const res = (kind: string, name: string, spec: unknown, namespace = 'shop') =>
  checkResource({ apiVersion: 'weft.io/v1alpha1', kind, metadata: { name, namespace }, spec });

function indexOf(resources: Resource[]): PolicyIndex {
  const servers = new Map<string, Map<string, Resource<'Server'>>>();
  const authorizations = new Map<string, Map<string, Resource<'AuthorizationPolicy'>>>();
  const namespaces = new Map<string, Resource<'Namespace'>>();
  const workloads = new Map<string, Map<string, Resource<'Workload'>>>();
  for (const r of resources) {
    if (r.kind === 'Namespace') namespaces.set(r.metadata.name, r as Resource<'Namespace'>);
    else {
      const byKind = { Server: servers, Workload: workloads, AuthorizationPolicy: authorizations } as Record<
        string,
        Map<string, Map<string, Resource>>
      >;
      const m = byKind[r.kind];
      if (!m.has(r.metadata.namespace)) m.set(r.metadata.namespace, new Map());
      m.get(r.metadata.namespace)?.set(r.metadata.name, r);
    }
  }
  return { servers, authorizations, namespaces, workloads };
}

const books = { namespace: 'shop', service: 'books', workload: 'books-0', identity: '', ports: [] };

describe('compileInboundPolicy', () => {
  const index = indexOf([
    res('Server', 'all-7002', { selector: {}, port: 7002 }),
    res('Server', 'books-http', { selector: { service: 'books' }, port: 7002, proxyProtocol: 'HTTP/1' }),
    res('Server', 'books-0-admin', { selector: { workload: 'books-0' }, port: 9000, accessPolicy: 'audit' }),
    res('Server', 'authors', { selector: { service: 'authors' }, port: 7003 }),
    res('Server', 'elsewhere', { selector: {}, port: 7004 }, 'other'),
    res('AuthorizationPolicy', 'b-web', {
      targetRef: { kind: 'Server', name: 'books-http' },
      from: [{ identities: ['spiffe://weft.local/ns/shop/sa/web'] }],
      http: [{ path: { prefix: '/books' }, methods: ['GET'] }],
    }),
    res('AuthorizationPolicy', 'a-ns-wide', {
      targetRef: { kind: 'Namespace', name: 'shop' },
      from: [{ networks: [{ cidr: '10.0.0.0/8' }] }],
    }),
    res('Namespace', 'shop', { defaultInboundPolicy: 'deny' }, 'default'),
  ]);

  it('picks the most specific Server per port and attaches its and the namespace-wide policies in name order', () => {
    const p = compileInboundPolicy(books, index, 'all-unauthenticated');
    assert.deepEqual(p, {
      namespace: 'shop',
      defaultPolicy: 'deny',
      defaultSource: 'namespace shop',
      servers: [
        {
          name: 'books-http',
          port: 7002,
          proxyProtocol: 'HTTP/1',
          accessPolicy: 'deny',
          authorizations: [
            {
              name: 'a-ns-wide',
              namespace: 'shop',
              clients: [
                {
                  identities: [],
                  identitySuffixes: [],
                  networks: [{ cidr: '10.0.0.0/8', except: [] }],
                  unauthenticated: false,
                },
              ],
              http: [],
            },
            {
              name: 'b-web',
              namespace: 'shop',
              clients: [
                {
                  identities: ['spiffe://weft.local/ns/shop/sa/web'],
                  identitySuffixes: [],
                  networks: [],
                  unauthenticated: false,
                },
              ],
              http: [{ pathExact: '', pathPrefix: '/books', methods: ['GET'] }],
            },
          ],
        },
        {
          name: 'books-0-admin',
          port: 9000,
          proxyProtocol: 'unknown',
          accessPolicy: 'audit',
          authorizations: [
            {
              name: 'a-ns-wide',
              namespace: 'shop',
              clients: [
                {
                  identities: [],
                  identitySuffixes: [],
                  networks: [{ cidr: '10.0.0.0/8', except: [] }],
                  unauthenticated: false,
                },
              ],
              http: [],
            },
          ],
        },
      ],
    });
  });

  it('selects by service alone when the workload is unknown, filters ports, and falls back to the mesh default', () => {
    const p = compileInboundPolicy({ ...books, workload: '', ports: [7002] }, index, 'all-unauthenticated');
    assert.deepEqual(
      p.servers.map((s) => s.name),
      ['books-http'],
    );
    const other = compileInboundPolicy(
      { namespace: 'other', service: 'x', workload: '', identity: '', ports: [] },
      index,
      'audit',
    );
    assert.deepEqual(
      [other.defaultPolicy, other.defaultSource, other.servers[0].name],
      ['audit', 'mesh', 'elsewhere'],
    );
  });

  it('finds the Workloads of a proxy that names only its identity', () => {
    const BOOKS_ID = 'spiffe://weft.local/ns/shop/sa/books';
    const withWorkload = indexOf([
      ...[...index.servers.get('shop')!.values()],
      res('Workload', 'books-0', { service: 'books', address: '127.0.0.1', identity: BOOKS_ID }),
    ]);
    const byId = { namespace: 'shop', service: '', workload: '', identity: BOOKS_ID, ports: [] };
    assert.deepEqual(
      compileInboundPolicy(byId, withWorkload, 'deny').servers.map((s) => s.name),
      ['books-http', 'books-0-admin'],
    );
    // Before its Workload is registered, only Servers of the whole namespace apply.
    assert.deepEqual(
      compileInboundPolicy(byId, index, 'deny').servers.map((s) => s.name),
      ['all-7002'],
    );
  });
});
