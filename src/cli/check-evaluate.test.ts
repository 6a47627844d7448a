import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { before, describe, it } from 'node:test';
import { newTestCa, type TestCa } from '../../test/support/test-ca.js';
import type { IdentityStatus } from '../lib/api-client-identity.js';
import type { Resource } from '../store/resource.js';
import {
  evaluateAnchors,
  evaluateIssuer,
  evaluateProxy,
  type ProxyIdentityJson,
  validity,
} from './check-evaluate.js';

const DAY_MS = 86_400_000;
const NOW = new Date('2026-11-26T10:00:00Z');
const at = (daysFromNow: number) => new Date(NOW.getTime() + daysFromNow * DAY_MS).toISOString();
const BOOKS = 'spiffe://weft.local/ns/default/sa/books';
const ANCHOR = 'a'.repeat(64);
const ISSUER = 'b'.repeat(64);

function caStatus(over: Partial<IdentityStatus> = {}): IdentityStatus {
  return {
    trustDomain: 'weft.local',
    source: 'generated',
    leafTtlMs: DAY_MS,
    identityAddr: '127.0.0.1:8080',
    tokensOutstanding: 0,
    certify: {},
    anchors: [
      { fingerprint: ANCHOR, subject: 'CN=a', notBefore: at(-10), notAfter: at(355), signsIssuer: true },
    ],
    issuer: {
      fingerprint: ISSUER,
      subject: 'CN=i',
      notBefore: at(-10),
      notAfter: at(80),
      anchorFingerprint: ANCHOR,
      generation: '1',
    },
    ...over,
  };
}

const workload = (name: string, spec: Partial<Resource<'Workload'>['spec']> = {}): Resource<'Workload'> => ({
  apiVersion: 'weft.io/v1alpha1',
  kind: 'Workload',
  metadata: { name, namespace: 'default' },
  spec: {
    service: 'books',
    address: '127.0.0.1',
    port: 4143,
    identity: BOOKS,
    adminAddress: '127.0.0.1:4191',
    ...spec,
  },
});

/** A proxy's /identity whose 24 h leaf was issued `ageH` hours before NOW. */
function proxyStatus(ageH: number, over: Partial<ProxyIdentityJson> = {}): ProxyIdentityJson {
  const notBefore = new Date(NOW.getTime() - ageH * 3_600_000);
  return {
    identity: BOOKS,
    ready: true,
    notBefore: notBefore.toISOString(),
    notAfter: new Date(notBefore.getTime() + DAY_MS).toISOString(),
    fingerprint: 'c'.repeat(64),
    issuerFingerprint: ISSUER,
    anchors: [{ fingerprint: ANCHOR }],
    ...over,
  };
}

const seen = (status: ProxyIdentityJson) =>
  ({ kind: 'identity', adminAddress: '127.0.0.1:4191', status }) as const;

describe('weft check: expiry thresholds (injected clock)', () => {
  it('ok with 60 days or more left, warn under 60, fail once expired or before notBefore', () => {
    const w = 60 * DAY_MS;
    assert.equal(validity({ notBefore: at(-1), notAfter: at(61) }, NOW, w).status, 'ok');
    assert.equal(validity({ notBefore: at(-1), notAfter: at(59) }, NOW, w).status, 'warn');
    assert.match(validity({ notBefore: at(-1), notAfter: at(59) }, NOW, w).text, /59 days left/);
    assert.equal(validity({ notBefore: at(-100), notAfter: at(0) }, NOW, w).status, 'fail');
    assert.match(validity({ notBefore: at(-100), notAfter: at(-1) }, NOW, w).text, /^expired on/);
    const future = validity({ notBefore: at(1), notAfter: at(300) }, NOW, w);
    assert.equal(future.status, 'fail');
    assert.match(future.text, /not valid before/);
  });

  it('an anchor under 60 days warns; an expired one fails; an empty bundle fails', () => {
    const s = caStatus({
      anchors: [
        { fingerprint: ANCHOR, subject: 'CN=a', notBefore: at(-300), notAfter: at(30), signsIssuer: true },
        {
          fingerprint: 'd'.repeat(64),
          subject: 'CN=d',
          notBefore: at(-400),
          notAfter: at(-2),
          signsIssuer: false,
        },
      ],
    });
    assert.deepEqual(
      evaluateAnchors(s, NOW).map((r) => [r.subject, r.status]),
      [
        [`trust anchor ${'a'.repeat(16)}`, 'warn'],
        [`trust anchor ${'d'.repeat(16)}`, 'fail'],
      ],
    );
    assert.equal(evaluateAnchors(caStatus({ anchors: [] }), NOW)[0].status, 'fail');
  });

  it('a generated issuer warns only once its automatic re-issue (30 days left) is overdue; a supplied one at 60', () => {
    const issuer = (daysLeft: number) => ({ ...caStatus().issuer, notAfter: at(daysLeft) });
    assert.equal(evaluateIssuer(caStatus({ issuer: issuer(45) }), NOW).status, 'ok');
    assert.equal(evaluateIssuer(caStatus({ issuer: issuer(29) }), NOW).status, 'warn');
    assert.equal(evaluateIssuer(caStatus({ issuer: issuer(45), source: 'supplied' }), NOW).status, 'warn');
    assert.equal(evaluateIssuer(caStatus({ issuer: issuer(-1) }), NOW).status, 'fail');
  });

  it('an issuer whose anchor left the bundle fails', () => {
    const r = evaluateIssuer(
      caStatus({ issuer: { ...caStatus().issuer, anchorFingerprint: 'e'.repeat(64) } }),
      NOW,
    );
    assert.equal(r.status, 'fail');
    assert.match(r.message, /not in the trust bundle/);
  });
});

describe('weft check: issuer chain (real certificates)', () => {
  let ca: TestCa;
  let other: TestCa;
  before(async () => {
    ca = await newTestCa();
    other = await newTestCa('Other');
  });
  const fp = (pem: string) => new X509Certificate(pem).fingerprint256.replaceAll(':', '').toLowerCase();

  it('verifies the presented issuer against the bundle, and fails against a foreign anchor', () => {
    const issuerPem = ca.intermediate.certPem;
    const s = caStatus({ issuer: { ...caStatus().issuer, fingerprint: fp(issuerPem) } });
    const good = evaluateIssuer(s, NOW, { issuerPem, anchorPems: ca.anchorsPem });
    assert.equal(good.status, 'ok', good.message);
    assert.match(good.message, /verified against anchor/);
    const bad = evaluateIssuer(s, NOW, { issuerPem, anchorPems: other.anchorsPem });
    assert.equal(bad.status, 'fail');
    assert.match(bad.message, /verifies against no anchor/);
  });

  it('fails when the identity service presents another issuer than the CA reports', () => {
    const r = evaluateIssuer(caStatus(), NOW, {
      issuerPem: ca.intermediate.certPem,
      anchorPems: ca.anchorsPem,
    });
    assert.equal(r.status, 'fail');
    assert.match(r.message, /presents issuer .* not the CA's/);
  });
});

describe('weft check: proxies', () => {
  const w = workload('books-0');
  const ca = caStatus();

  it('a fresh certificate for the expected identity from the current issuer is ok', () => {
    const r = evaluateProxy(w, seen(proxyStatus(2)), ca, NOW);
    assert.equal(r.status, 'ok', r.message);
    assert.equal(r.subject, 'workload default/books-0');
    assert.match(r.message, /91% left/);
  });

  it('warns when under 30% of the lifetime is left (renewal at 70% is overdue)', () => {
    assert.equal(evaluateProxy(w, seen(proxyStatus(16)), ca, NOW).status, 'ok'); // 33% left
    const r = evaluateProxy(w, seen(proxyStatus(17)), ca, NOW); // 29% left
    assert.equal(r.status, 'warn');
    assert.match(r.message, /renewal overdue: 29% of its lifetime left/);
  });

  it('fails when expired, not yet valid, or without a certificate', () => {
    assert.match(evaluateProxy(w, seen(proxyStatus(25)), ca, NOW).message, /certificate expired on/);
    assert.equal(evaluateProxy(w, seen(proxyStatus(25)), ca, NOW).status, 'fail');
    assert.equal(evaluateProxy(w, seen(proxyStatus(-1)), ca, NOW).status, 'fail');
    const none = proxyStatus(0, { ready: false, notBefore: null, notAfter: null });
    assert.match(evaluateProxy(w, seen(none), ca, NOW).message, /no certificate yet/);
  });

  it('fails on a mismatched identity, naming both', () => {
    const r = evaluateProxy(
      w,
      seen(proxyStatus(1, { identity: 'spiffe://weft.local/ns/default/sa/authors' })),
      ca,
      NOW,
    );
    assert.equal(r.status, 'fail');
    assert.match(
      r.message,
      /sa\/authors, but the Workload expects spiffe:\/\/weft\.local\/ns\/default\/sa\/books/,
    );
  });

  it('fails on an unreachable proxy, naming its admin address', () => {
    const r = evaluateProxy(
      w,
      { kind: 'unreachable', adminAddress: '127.0.0.1:9', detail: 'ECONNREFUSED' },
      ca,
      NOW,
    );
    assert.equal(r.status, 'fail');
    assert.equal(r.message, 'proxy not reachable at 127.0.0.1:9 (ECONNREFUSED)');
  });

  it('warns on an older issuer generation or a missing new anchor; fails when it trusts no bundle anchor', () => {
    const old = evaluateProxy(w, seen(proxyStatus(1, { issuerFingerprint: 'f'.repeat(64) })), ca, NOW);
    assert.equal(old.status, 'warn');
    assert.match(old.message, /older issuer f{16}, not generation 1/);
    const rotated = caStatus({
      anchors: [
        ...ca.anchors.map((a) => ({ ...a, signsIssuer: false })),
        {
          fingerprint: '9'.repeat(64),
          subject: 'CN=n',
          notBefore: at(-1),
          notAfter: at(364),
          signsIssuer: true,
        },
      ],
      issuer: { ...ca.issuer, anchorFingerprint: '9'.repeat(64) },
    });
    assert.match(
      evaluateProxy(w, seen(proxyStatus(1)), rotated, NOW).message,
      /does not trust anchor 9{16} yet/,
    );
    const foreign = evaluateProxy(
      w,
      seen(proxyStatus(1, { anchors: [{ fingerprint: '0'.repeat(64) }] })),
      ca,
      NOW,
    );
    assert.equal(foreign.status, 'fail');
  });

  it('a proxy without identity fails when the Workload expects one, warns otherwise; no admin address warns', () => {
    const none = { kind: 'no-identity', adminAddress: '127.0.0.1:4191' } as const;
    assert.equal(evaluateProxy(w, none, ca, NOW).status, 'fail');
    assert.equal(evaluateProxy(workload('x', { identity: undefined }), none, ca, NOW).status, 'warn');
    assert.equal(evaluateProxy(w, { kind: 'no-admin-address' }, ca, NOW).status, 'warn');
  });
});
