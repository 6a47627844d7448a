import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatHostPort, normalizeAuthority, parseHostPort } from './addr.js';

test('parses host:port, bracketed IPv6, and a default port', () => {
  assert.deepEqual(parseHostPort('books:7002'), { host: 'books', port: 7002 });
  assert.deepEqual(parseHostPort('[::1]:80'), { host: '::1', port: 80 });
  assert.deepEqual(parseHostPort('books', 80), { host: 'books', port: 80 });
  assert.throws(() => parseHostPort('books'), /no valid port/);
  assert.throws(() => parseHostPort('books:99999'), /no valid port/);
  assert.throws(() => parseHostPort(':80'), /not host:port/);
  assert.equal(formatHostPort({ host: '::1', port: 80 }), '[::1]:80');
});

test('authorities normalize to lower-case host with an explicit port', () => {
  assert.equal(normalizeAuthority('Books'), 'books:80');
  assert.equal(normalizeAuthority('BOOKS:7002'), 'books:7002');
  assert.equal(normalizeAuthority('[::1]'), '[::1]:80');
});
