import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type InboundPolicy, newAuthorizer } from '../../lib/authz.js';
import { newLogger } from '../../lib/log.js';
import { Registry } from '../../lib/metrics/registry.js';
import { newInboundAuthz } from './inbound-authz.js';
import type { InboundPolicySource } from './policy-client.js';

const WEB = 'spiffe://weft.local/ns/shop/sa/web';
const policy: InboundPolicy = {
  namespace: 'shop',
  defaultPolicy: 'audit',
  defaultSource: 'namespace shop',
  servers: [
    {
      name: 'books-http',
      port: 7002,
      proxyProtocol: 'HTTP/1',
      accessPolicy: 'deny',
      authorizations: [
        {
          name: 'web',
          namespace: 'shop',
          clients: [{ identities: [WEB], identitySuffixes: [], networks: [], unauthenticated: false }],
          http: [],
        },
      ],
    },
    { name: 'db', port: 5432, proxyProtocol: 'opaque', accessPolicy: 'deny', authorizations: [] },
  ],
};
const source: InboundPolicySource = {
  current: () => newAuthorizer(policy),
  whenReady: () => Promise.resolve(),
  close: () => {},
};

describe('newInboundAuthz', () => {
  it('counts allows by server and authorization, denials and audits by server, and throttles its logs', () => {
    const registry = new Registry();
    const lines: string[] = [];
    const authz = newInboundAuthz(
      source,
      registry,
      newLogger('info', {}, (l) => lines.push(l)),
    );
    const web = { tls: true, clientId: WEB, remoteAddr: '127.0.0.1' };
    const anon = { tls: false, remoteAddr: '127.0.0.9' };
    assert.equal(authz.authorizeHttp(7002, web, 'GET', '/').verdict, 'allow');
    for (let i = 0; i < 5; i++) assert.equal(authz.authorizeHttp(7002, anon, 'GET', '/').verdict, 'deny');
    assert.equal(authz.authorizeTcp(9999, anon).verdict, 'audit-deny');
    assert.equal(authz.authorizeTcp(5432, web).verdict, 'deny');
    const text = registry.render();
    assert.match(
      text,
      /inbound_http_authz_allow_total\{srv_name="books-http",srv_port="7002",authz_name="web",authz_rule="0"\} 1/,
    );
    assert.match(text, /inbound_http_authz_deny_total\{srv_name="books-http",srv_port="7002"\} 5/);
    assert.match(text, /inbound_tcp_authz_audit_total\{srv_name="default:audit",srv_port="9999"\} 1/);
    assert.match(text, /inbound_tcp_authz_deny_total\{srv_name="db",srv_port="5432"\} 1/);
    const denials = lines.filter((l) => l.includes('inbound request denied by policy'));
    assert.equal(denials.length, 2, 'one line per server and port within a second');
    assert.match(denials[0], /"client":"unauthenticated from 127\.0\.0\.9 \(no mTLS\)"/);
    assert.equal(lines.filter((l) => l.includes('authorization audit: would deny')).length, 1);
    assert.ok(authz.isOpaque(5432) && !authz.isOpaque(7002));
    const err = authz.deniedError(authz.authorizeHttp(7002, anon, 'GET', '/x'), anon);
    assert.deepEqual(
      [err.code, err.httpStatus, err.reason],
      ['WEFT_ERR_UNAUTHORIZED', 403, 'unauthorized: no authorization for this client on server books-http'],
    );
  });
});
