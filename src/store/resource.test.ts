import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  checkResource,
  compareVersions,
  formatFieldPath,
  validateResource,
  type WorkloadSpec,
} from './resource.js';
import { ValidationError } from './store-error.js';

const service = (spec: unknown, metadata: unknown = { name: 'books' }) => ({
  apiVersion: 'weft.io/v1alpha1',
  kind: 'Service',
  metadata,
  spec,
});

/** The `path: message` lines of the ValidationError `raw` fails with. */
function problemsOf(raw: unknown): string[] {
  try {
    checkResource(raw);
  } catch (err) {
    assert.ok(err instanceof ValidationError, `expected a ValidationError, got ${err}`);
    assert.equal(err.code, 'WEFT_ERR_INVALID_RESOURCE');
    return err.problems.map((p) => `${p.path}: ${p.message}`);
  }
  assert.fail('no error thrown');
}

describe('validateResource', () => {
  it('accepts a Service, defaults the namespace and freezes the result', () => {
    const r = checkResource(service({ ports: [{ port: 7002, protocol: 'grpc' }, { port: 80 }] }));
    assert.equal(r.metadata.namespace, 'default');
    assert.deepEqual(r.spec, { ports: [{ port: 7002, protocol: 'grpc' }, { port: 80 }] });
    assert.ok(Object.isFrozen(r) && Object.isFrozen(r.metadata) && Object.isFrozen(r.spec));
  });

  it('accepts a Workload and the Gateway API route kinds with their own apiVersion', () => {
    const w = checkResource({
      apiVersion: 'weft.io/v1alpha1',
      kind: 'Workload',
      metadata: { name: 'books-0', namespace: 'shop', labels: { app: 'books' } },
      spec: { service: 'books', address: '127.0.0.1', port: 4143, identity: 'books.shop' },
    });
    assert.equal(w.metadata.namespace, 'shop');
    assert.deepEqual(w.metadata.labels, { app: 'books' });
    const route = { kind: 'HTTPRoute', metadata: { name: 'r' }, spec: { parentRefs: [] } };
    assert.equal(checkResource({ apiVersion: 'gateway.networking.k8s.io/v1', ...route }).kind, 'HTTPRoute');
    assert.deepEqual(problemsOf({ apiVersion: 'weft.io/v1alpha1', ...route }), [
      'apiVersion: must be gateway.networking.k8s.io/v1 for kind HTTPRoute',
    ]);
  });

  it("checks a Workload's optional adminAddress as host:port", () => {
    const w = (adminAddress: unknown) => ({
      apiVersion: 'weft.io/v1alpha1',
      kind: 'Workload',
      metadata: { name: 'books-0' },
      spec: { service: 'books', address: '127.0.0.1', port: 4143, adminAddress },
    });
    assert.equal((checkResource(w('127.0.0.1:4191')).spec as WorkloadSpec).adminAddress, '127.0.0.1:4191');
    for (const bad of ['127.0.0.1', 'host:0', ':4191', 4191])
      assert.deepEqual(problemsOf(w(bad)), [
        "spec.adminAddress: must be host:port (the admin listener of the workload's proxy)",
      ]);
  });

  it('rejects unknown kinds', () => {
    assert.deepEqual(problemsOf({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' }, spec: {} }), [
      'kind: must be one of Service, Workload, Server, AuthorizationPolicy, Profile, HTTPRoute, GRPCRoute, Namespace',
    ]);
  });

  it('names the field path of every problem, all at once', () => {
    assert.deepEqual(
      problemsOf(
        service(
          { ports: [{ port: 0 }, { port: 80, protocol: 'udp' }, { port: 80, extra: 1 }] },
          { name: 'Books_1' },
        ),
      ),
      [
        'metadata.name: must be a DNS-1123 label (lower case a-z, 0-9 and "-", at most 63 characters)',
        'spec.ports[0].port: must be an integer 1-65535',
        'spec.ports[1].protocol: must be one of http, grpc, opaque',
        'spec.ports[2].extra: unknown field',
        'spec.ports[2].port: duplicates spec.ports[1]',
      ],
    );
    assert.deepEqual(
      problemsOf({
        apiVersion: 'weft.io/v1alpha1',
        kind: 'Workload',
        metadata: { name: 'w', namespace: 'x'.repeat(64) },
        spec: { service: 'books', address: 'not an address', port: '80' },
      }),
      [
        'metadata.namespace: must be a DNS-1123 label (lower case a-z, 0-9 and "-", at most 63 characters)',
        'spec.address: must be an IP address or a host name',
        'spec.port: must be an integer 1-65535',
      ],
    );
    assert.deepEqual(problemsOf(service({ ports: [] })), [
      'spec.ports: must be a non-empty list of { port, protocol? }',
    ]);
    assert.deepEqual(problemsOf('text'), [
      ': a resource must be a mapping with apiVersion, kind, metadata and spec',
    ]);
  });

  it('checks store-owned metadata only for shape', () => {
    const r = validateResource(service({ ports: [{ port: 80 }] }, { name: 'b', resourceVersion: 7 }));
    assert.ok(r.ok);
    assert.equal(r.resource.metadata.resourceVersion, '7');
    assert.deepEqual(problemsOf(service({ ports: [{ port: 80 }] }, { name: 'b', resourceVersion: '07' })), [
      'metadata.resourceVersion: must be a decimal number',
    ]);
  });
});

const policyKind = (kind: string, spec: unknown, metadata: unknown = { name: 'p', namespace: 'shop' }) => ({
  apiVersion: 'weft.io/v1alpha1',
  kind,
  metadata,
  spec,
});

describe('policy kinds', () => {
  it('accepts a Server, an AuthorizationPolicy and a Namespace as documented in docs/policy.md', () => {
    checkResource(
      policyKind('Server', {
        selector: { service: 'books' },
        port: 7002,
        proxyProtocol: 'HTTP/1',
        accessPolicy: 'audit',
      }),
    );
    checkResource(policyKind('Server', { selector: {}, port: 7002 }));
    checkResource(
      policyKind('AuthorizationPolicy', {
        targetRef: { kind: 'Server', name: 'books-http' },
        from: [
          { identities: ['spiffe://weft.local/ns/shop/sa/web', 'spiffe://weft.local/ns/ops/sa/*'] },
          { identitySuffixes: ['ns/shop/sa/*'], networks: [{ cidr: '10.0.0.0/8', except: ['10.1.0.0/16'] }] },
          { unauthenticated: true, networks: [{ cidr: '127.0.0.1/32' }] },
        ],
        http: [{ path: { prefix: '/books' }, methods: ['GET', 'HEAD'] }],
      }),
    );
    checkResource(
      policyKind('AuthorizationPolicy', {
        targetRef: { kind: 'Namespace', name: 'shop' },
        from: [{ identities: ['*'] }],
      }),
    );
    const ns = checkResource(policyKind('Namespace', { defaultInboundPolicy: 'deny' }, { name: 'shop' }));
    assert.equal(ns.metadata.namespace, 'default');
  });

  it('names every problem of a policy resource', () => {
    assert.deepEqual(
      problemsOf(
        policyKind('Server', {
          selector: { app: 'x' },
          port: 0,
          proxyProtocol: 'http',
          accessPolicy: 'open',
        }),
      ),
      [
        'spec.selector.app: unknown field',
        'spec.port: must be an integer 1-65535',
        'spec.proxyProtocol: must be one of HTTP/1, HTTP/2, gRPC, opaque, unknown',
        'spec.accessPolicy: must be one of all-unauthenticated, all-authenticated, deny, audit',
      ],
    );
    assert.deepEqual(
      problemsOf(
        policyKind('AuthorizationPolicy', {
          targetRef: { kind: 'Namespace', name: 'other' },
          from: [
            {},
            { identities: ['web'], unauthenticated: true },
            { identitySuffixes: ['/ns/shop'], networks: [{ cidr: '10.0.0.0/8', except: ['11.0.0.0/16'] }] },
            { networks: [{ cidr: '10.0.0.0/40' }] },
          ],
          http: [{ path: { prefix: 'books' }, methods: ['get'] }],
        }),
      ),
      [
        'spec.targetRef.name: a policy can only target its own namespace (shop)',
        'spec.from[0]: must allow someone: identities, identitySuffixes, networks or unauthenticated: true',
        'spec.from[1].identities[0]: must be a SPIFFE ID (spiffe://<trust-domain>/ns/<ns>/sa/<account>, a segment may be *) or *',
        'spec.from[1].unauthenticated: contradicts identities/identitySuffixes in the same rule (use two rules)',
        'spec.from[2].identitySuffixes[0]: must be the last segments of a SPIFFE ID without a leading "/", e.g. ns/shop/sa/*',
        'spec.from[2].networks[0].except[0]: must lie inside 10.0.0.0/8',
        'spec.from[3].networks[0].cidr: "10.0.0.0/40" has a prefix length outside 0-32',
        'spec.http[0].path.prefix: must start with /',
        'spec.http[0].methods[0]: must be an upper-case HTTP method such as GET',
      ],
    );
    assert.deepEqual(
      problemsOf(policyKind('Namespace', { defaultInboundPolicy: 'nope' }, { name: 'a', namespace: 'b' })),
      [
        'metadata.namespace: a Namespace is cluster-scoped: omit metadata.namespace (stored as default)',
        'spec.defaultInboundPolicy: must be one of all-unauthenticated, all-authenticated, deny, audit',
      ],
    );
  });
});

describe('helpers', () => {
  it('formats field paths and orders resourceVersions numerically', () => {
    assert.equal(formatFieldPath(['spec', 'ports', 0, 'port']), 'spec.ports[0].port');
    assert.ok(compareVersions('9', '10') < 0);
    assert.ok(compareVersions('10', '9') > 0);
    assert.equal(compareVersions('12', '12'), 0);
  });
});
