import assert from 'node:assert/strict';
import { test } from 'node:test';
import { endToEndHeaders, h1HasBody, parseTimeoutHeader } from './headers.js';

test('hop-by-hop fields, fields named by Connection, pseudo-headers and host are dropped', () => {
  const out = endToEndHeaders({
    ':method': 'GET',
    host: 'books',
    connection: 'keep-alive, X-Foo',
    'x-foo': '1',
    'keep-alive': 'timeout=5',
    'proxy-connection': 'keep-alive',
    'transfer-encoding': 'chunked',
    upgrade: 'h2c',
    'x-bar': '2',
    'set-cookie': ['a=1', 'b=2'],
  });
  assert.deepEqual(out, { 'x-bar': '2', 'set-cookie': ['a=1', 'b=2'] });
});

test('te: trailers survives (gRPC needs it end to end); other te values do not', () => {
  assert.deepEqual(endToEndHeaders({ te: 'trailers' }), { te: 'trailers' });
  assert.deepEqual(endToEndHeaders({ te: 'gzip' }), {});
});

test('a request has a body when it is chunked or has a non-zero Content-Length', () => {
  assert.equal(h1HasBody({}), false);
  assert.equal(h1HasBody({ 'content-length': '0' }), false);
  assert.equal(h1HasBody({ 'content-length': '3' }), true);
  assert.equal(h1HasBody({ 'transfer-encoding': 'chunked' }), true);
});

test('weft-timeout accepts ms, s and m, and ignores junk', () => {
  assert.equal(parseTimeoutHeader('250'), 250);
  assert.equal(parseTimeoutHeader('250ms'), 250);
  assert.equal(parseTimeoutHeader('1.5s'), 1500);
  assert.equal(parseTimeoutHeader('2m'), 120_000);
  assert.equal(parseTimeoutHeader('soon'), undefined);
  assert.equal(parseTimeoutHeader('0'), undefined);
  assert.equal(parseTimeoutHeader(undefined), undefined);
});

test('a client-sent weft-client-id is never carried on (only the inbound proxy sets it)', () => {
  assert.deepEqual(
    endToEndHeaders({ 'weft-client-id': 'spiffe://weft.local/ns/default/sa/forged', 'x-a': '1' }),
    {
      'x-a': '1',
    },
  );
});
