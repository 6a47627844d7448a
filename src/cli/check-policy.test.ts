import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Resource } from '../store/resource.js';
import { evaluatePolicy } from './check-policy.js';

describe('weft check: policy resources', () => {
  const r = <K extends 'Service' | 'Server' | 'AuthorizationPolicy'>(kind: K, name: string, spec: unknown) =>
    ({ apiVersion: 'weft.io/v1alpha1', kind, metadata: { name, namespace: 'shop' }, spec }) as Resource<K>;
  const services = [r('Service', 'books', { ports: [{ port: 7002 }] })];
  const servers = [
    r('Server', 'books-http', { selector: { service: 'books' }, port: 7002 }),
    r('Server', 'books-admin', { selector: { service: 'books' }, port: 9999 }),
    r('Server', 'ghost', { selector: { service: 'ghost' }, port: 7002 }),
  ];
  const authorizations = [
    r('AuthorizationPolicy', 'web-reads', {
      targetRef: { kind: 'Server', name: 'books-http' },
      from: [{ unauthenticated: true }],
    }),
    r('AuthorizationPolicy', 'typo', {
      targetRef: { kind: 'Server', name: 'books-htp' },
      from: [{ unauthenticated: true }],
    }),
  ];

  it('fails a policy targeting a missing Server, warns on Servers that select no Service port', () => {
    const out = evaluatePolicy({ services, workloads: [], servers, authorizations });
    assert.deepEqual(
      out.map((x) => [x.subject, x.status]),
      [
        ['Server shop/books-admin', 'warn'],
        ['Server shop/books-http', 'ok'],
        ['Server shop/ghost', 'warn'],
        ['AuthorizationPolicy shop/typo', 'fail'],
        ['AuthorizationPolicy shop/web-reads', 'ok'],
      ],
    );
    assert.match(out[3].message, /targets Server books-htp, which does not exist in namespace shop/);
    assert.match(out[0].message, /port 9999 is not a port of Service books/);
  });

  it('is one ok line without policy resources', () => {
    assert.deepEqual(
      evaluatePolicy({ services, workloads: [], servers: [], authorizations: [] }).map((x) => x.status),
      ['ok'],
    );
  });
});
