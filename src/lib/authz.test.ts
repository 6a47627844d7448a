import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type AuthzClient,
  type AuthzPeer,
  type CompiledAuthorization,
  type CompiledServer,
  type InboundPolicy,
  newAuthorizer,
} from './authz.js';
import { compileIdentityPattern, compileNetwork, httpMismatch, parseCidr } from './authz-match.js';

const WEB = 'spiffe://weft.local/ns/shop/sa/web';
const ADMIN = 'spiffe://weft.local/ns/ops/sa/admin';
const mtls = (clientId: string, remoteAddr = '127.0.0.1'): AuthzPeer => ({ tls: true, clientId, remoteAddr });
const plain = (remoteAddr = '127.0.0.1'): AuthzPeer => ({ tls: false, remoteAddr });

const client = (c: Partial<AuthzClient>): AuthzClient => ({
  identities: [],
  identitySuffixes: [],
  networks: [],
  unauthenticated: false,
  ...c,
});
const authz = (name: string, clients: AuthzClient[], http: CompiledAuthorization['http'] = []) => ({
  name,
  namespace: 'shop',
  clients,
  http,
});
const server = (s: Partial<CompiledServer> & { name: string; port: number }): CompiledServer => ({
  proxyProtocol: 'HTTP/1',
  accessPolicy: 'deny',
  authorizations: [],
  ...s,
});
const policy = (servers: CompiledServer[], defaultPolicy: InboundPolicy['defaultPolicy'] = 'deny') => ({
  namespace: 'shop',
  defaultPolicy,
  defaultSource: 'namespace shop',
  servers,
});

describe('identity patterns', () => {
  it('matches exact ids, * segments, and suffixes on segment boundaries', () => {
    assert.ok(compileIdentityPattern(WEB, true).matches(WEB));
    assert.ok(!compileIdentityPattern(WEB, true).matches(`${WEB}2`));
    assert.ok(compileIdentityPattern('spiffe://weft.local/ns/shop/sa/*', true).matches(WEB));
    assert.ok(!compileIdentityPattern('spiffe://weft.local/ns/shop/sa/*', true).matches(ADMIN));
    assert.ok(compileIdentityPattern('ns/shop/sa/*', false).matches(WEB));
    assert.ok(compileIdentityPattern('sa/web', false).matches(WEB));
    assert.ok(!compileIdentityPattern('a/web', false).matches(WEB), 'suffixes align on segments');
    assert.ok(compileIdentityPattern('*', true).matches(ADMIN));
    assert.ok(!compileIdentityPattern('*', true).matches(''));
  });
});

describe('networks', () => {
  it('matches v4, v6 and v4-mapped addresses, minus the except blocks', () => {
    const n = compileNetwork('10.0.0.0/8', ['10.1.0.0/16']);
    assert.ok(n.contains('10.2.3.4'));
    assert.ok(n.contains('::ffff:10.2.3.4'));
    assert.ok(!n.contains('10.1.3.4'));
    assert.ok(!n.contains('11.0.0.1'));
    const v6 = compileNetwork('fd00::/8', []);
    assert.ok(v6.contains('fd12::1'));
    assert.ok(!v6.contains('fe80::1'));
    assert.ok(!v6.contains('10.2.3.4'));
    assert.ok(compileNetwork('127.0.0.1', []).contains('127.0.0.1'));
    assert.ok(compileNetwork('0.0.0.0/0', []).contains('8.8.8.8'));
    assert.throws(() => parseCidr('10.0.0.0/33'), /prefix length/);
    assert.throws(() => parseCidr('ten'), /not an address/);
  });
});

describe('http matches', () => {
  it('matches path prefixes on / boundaries, exact paths and methods', () => {
    const m = { pathExact: '', pathPrefix: '/books', methods: ['GET'] };
    assert.equal(httpMismatch(m, 'GET', '/books/1?x=y'), undefined);
    assert.equal(httpMismatch(m, 'get', '/books'), undefined);
    assert.match(httpMismatch(m, 'GET', '/booksx') ?? '', /not under \/books/);
    assert.match(httpMismatch(m, 'POST', '/books') ?? '', /method POST/);
    assert.equal(httpMismatch({ pathExact: '/a', pathPrefix: '', methods: [] }, 'PUT', '/a'), undefined);
  });

  it('matches every reading of a path: dot-segments, encoded dots and slashes cannot escape a prefix', () => {
    const m = { pathExact: '', pathPrefix: '/public', methods: [] };
    for (const escaping of [
      '/public/../admin',
      '/public/%2e%2e/admin',
      '/public/%2E%2E/admin',
      '/public%2f..%2fadmin',
      '/public\\..\\admin',
      '/public/./../admin?x=1',
    ])
      assert.match(httpMismatch(m, 'GET', escaping) ?? '', /not under \/public/, escaping);
    for (const fine of ['/public/a/../b', '/public/./x', '/public//x', '/public/file.txt', '/public/a%20b'])
      assert.equal(httpMismatch(m, 'GET', fine), undefined, fine);
    const exact = { pathExact: '/admin', pathPrefix: '', methods: [] };
    assert.equal(httpMismatch(exact, 'GET', '/x/../admin'), undefined);
    assert.match(httpMismatch(exact, 'GET', '/admin/%2e%2e/other') ?? '', /is not \/admin/);
  });
});

describe('newAuthorizer', () => {
  const a = newAuthorizer(
    policy([
      server({
        name: 'books-http',
        port: 7002,
        authorizations: [
          authz(
            'web-reads',
            [client({ identities: [WEB] })],
            [{ pathExact: '', pathPrefix: '/books', methods: ['GET'] }],
          ),
          authz('ops', [
            client({ identitySuffixes: ['ns/ops/sa/*'] }),
            client({ networks: [{ cidr: '10.9.0.0/16', except: [] }] }),
          ]),
        ],
      }),
      server({ name: 'books-tcp', port: 7003, proxyProtocol: 'opaque', accessPolicy: 'audit' }),
      server({ name: 'books-open', port: 7004, accessPolicy: 'all-authenticated' }),
    ]),
  );

  it('allows by the first matching authorization and names it', () => {
    const d = a.decide(7002, mtls(WEB), { method: 'GET', path: '/books/1' });
    assert.deepEqual(
      { verdict: d.verdict, server: d.server, authorization: d.authorization, rule: d.rule },
      { verdict: 'allow', server: 'books-http', authorization: 'web-reads', rule: 0 },
    );
    const ops = a.decide(7002, mtls(ADMIN), { method: 'DELETE', path: '/x' });
    assert.equal(ops.authorization, 'ops');
    assert.equal(a.decide(7002, plain('10.9.1.1'), { method: 'GET', path: '/' }).rule, 1);
  });

  it('denies when nothing matches, and an identity without mTLS does not count', () => {
    assert.equal(a.decide(7002, mtls(WEB), { method: 'POST', path: '/books' }).verdict, 'deny');
    assert.equal(
      a.decide(7002, { tls: false, clientId: WEB, remoteAddr: '1.2.3.4' }, { method: 'GET', path: '/books' })
        .verdict,
      'deny',
    );
    const tcp = a.decide(7002, mtls(WEB));
    assert.equal(tcp.verdict, 'deny', 'HTTP-only authorizations never allow opaque TCP');
    assert.equal(tcp.server, 'books-http');
  });

  it('applies the server access policy: audit allows as a would-be denial, all-authenticated needs an id', () => {
    assert.equal(a.decide(7003, plain()).verdict, 'audit-deny');
    assert.equal(a.decide(7004, plain(), { method: 'GET', path: '/' }).verdict, 'deny');
    assert.equal(
      a.decide(7004, mtls(ADMIN), { method: 'GET', path: '/' }).authorization,
      'server:all-authenticated',
    );
  });

  it('falls back to the default policy for ports without a Server', () => {
    const d = a.decide(9999, mtls(WEB));
    assert.deepEqual([d.verdict, d.server], ['deny', 'default:deny']);
    const open = newAuthorizer(policy([], 'all-unauthenticated')).decide(1, plain());
    assert.deepEqual([open.verdict, open.authorization], ['allow', 'default:all-unauthenticated']);
  });

  it('explains every authorization it considered', () => {
    const e = a.explain(7002, mtls(WEB), { method: 'POST', path: '/books' });
    assert.equal(e.decision.verdict, 'deny');
    const text = e.steps.join('\n');
    assert.match(text, /port 7002 is Server books-http/);
    assert.match(text, /web-reads: no match: method POST is not one of GET/);
    assert.match(
      text,
      /ops: no match: rule 0: identity .*web is not one of ns\/ops\/sa\/\*; rule 1: address/,
    );
    assert.match(text, /accessPolicy deny applies/);
  });
});
