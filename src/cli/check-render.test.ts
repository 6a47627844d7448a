import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { assertGolden } from '../../test/support/golden.js';
import type { CheckResult } from './check-evaluate.js';
import { renderCheck, renderCheckJson } from './check-render.js';

const results: CheckResult[] = [
  { group: 'control plane', subject: 'API', status: 'ok', message: 'answers at 127.0.0.1:8084' },
  { group: 'control plane', subject: 'Destination', status: 'ok', message: 'gRPC answers at 127.0.0.1:8086' },
  {
    group: 'control plane',
    subject: 'Identity',
    status: 'ok',
    message:
      'TLS at 127.0.0.1:8080 as spiffe://weft.local/ns/weft/sa/identity, chain verified against the trust bundle',
  },
  {
    group: 'identity',
    subject: 'trust anchor 292cb87733c69927',
    status: 'warn',
    message: 'valid until 2027-01-10 (45 days left), signs the issuer',
  },
  {
    group: 'identity',
    subject: 'issuer generation 2 (be62b7d73415a57d)',
    status: 'ok',
    message: 'valid until 2027-02-24 (89 days left), verified against anchor 292cb87733c69927',
  },
  {
    group: 'proxies',
    subject: 'workload default/books-0',
    status: 'ok',
    message:
      'spiffe://weft.local/ns/default/sa/books, certificate valid until 2026-11-27T08:00:00.000Z (91% left)',
  },
  {
    group: 'proxies',
    subject: 'workload default/books-1',
    status: 'fail',
    message: 'proxy not reachable at 127.0.0.1:4191 (ECONNREFUSED)',
  },
  {
    group: 'policy',
    subject: 'AuthorizationPolicy shop/typo',
    status: 'fail',
    message: 'targets Server books-htp, which does not exist in namespace shop: it authorizes nothing',
  },
];

describe('weft check: report', () => {
  it('renders one greppable line per check and a summary', () => {
    assertGolden('check.txt', renderCheck(results));
  });

  it('colours marks only when asked, and says "passed" without failures', () => {
    const ESC = '\u001b';
    assert.ok(!renderCheck(results).includes(ESC));
    assert.ok(renderCheck(results, true).includes(`${ESC}[31m[fail]${ESC}[0m workload default/books-1:`));
    assert.match(renderCheck(results.slice(0, 3)), /summary: 3 ok, 0 warnings, 0 failed: passed\n$/);
  });

  it('-o json carries every check and the counts', () => {
    const j = JSON.parse(renderCheckJson(results)) as { checks: CheckResult[]; summary: unknown };
    assert.equal(j.checks.length, results.length);
    assert.deepEqual(j.summary, { ok: 5, warn: 1, fail: 2 });
  });
});
