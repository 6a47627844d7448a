import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError } from '../lib/errors.js';
import { loadProxyConfig } from './config.js';

const BASE = { WEFT_PROXY_INBOUND_LISTEN_ADDR: 'none' };
const IDENTITY = {
  WEFT_PROXY_IDENTITY: 'spiffe://weft.local/ns/default/sa/books',
  WEFT_PROXY_IDENTITY_ADDR: '127.0.0.1:8080',
  WEFT_PROXY_IDENTITY_TOKEN_FILE: '/run/weft/token',
  WEFT_PROXY_IDENTITY_TRUST_ANCHORS_FILE: '/run/weft/anchors.pem',
};

const problemsOf = (env: Record<string, string>): string[] => {
  try {
    loadProxyConfig(env);
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    return [...err.problems];
  }
  return [];
};

describe('proxy identity settings', () => {
  it('are all optional: none set means no identity', () => {
    const c = loadProxyConfig(BASE);
    assert.equal(c.identity, undefined);
    assert.equal(c.identityAddr, undefined);
  });

  it('parse when all four are given', () => {
    const c = loadProxyConfig({ ...BASE, ...IDENTITY });
    assert.equal(c.identity, IDENTITY.WEFT_PROXY_IDENTITY);
    assert.deepEqual(c.identityAddr, { host: '127.0.0.1', port: 8080 });
    assert.equal(c.identityTokenFile, '/run/weft/token');
    assert.equal(c.identityTrustAnchorsFile, '/run/weft/anchors.pem');
  });

  it('go together: each missing one is named', () => {
    const {
      WEFT_PROXY_IDENTITY_TOKEN_FILE: _t,
      WEFT_PROXY_IDENTITY_TRUST_ANCHORS_FILE: _a,
      ...partial
    } = IDENTITY;
    const problems = problemsOf({ ...BASE, ...partial });
    assert.equal(problems.length, 2);
    assert.match(problems[0] as string, /^WEFT_PROXY_IDENTITY_TOKEN_FILE: required when/);
    assert.match(problems[1] as string, /^WEFT_PROXY_IDENTITY_TRUST_ANCHORS_FILE: required when/);
  });

  it('refuse an identity that is not a SPIFFE ID, and a bad address, in one report', () => {
    const problems = problemsOf({
      ...BASE,
      ...IDENTITY,
      WEFT_PROXY_IDENTITY: 'books',
      WEFT_PROXY_IDENTITY_ADDR: 'nope:x',
    });
    assert.equal(problems.length, 2);
    assert.match(problems.join('\n'), /WEFT_PROXY_IDENTITY="books": expected spiffe:/);
    assert.match(problems.join('\n'), /WEFT_PROXY_IDENTITY_ADDR=/);
  });
});
