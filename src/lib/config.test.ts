import assert from 'node:assert/strict';
import { test } from 'node:test';
import { flagFor, parseIntIn, parseList, parseSettings } from './config.js';
import { ConfigError } from './errors.js';

const SPEC = {
  port: { env: 'X_PORT', default: '80', parse: parseIntIn(1, 65535), doc: 'port' },
  timeoutMs: { env: 'X_TIMEOUT_MS', default: '100', parse: parseIntIn(0, 1000), doc: 'ms' },
  names: { env: 'X_NAMES', default: '', parse: parseList((s) => s.toUpperCase()), doc: 'names' },
  optional: { env: 'X_OPTIONAL', parse: parseIntIn(0, 9), doc: 'unset by default' },
} as const;

test('defaults apply, values parse, and the result is frozen', () => {
  const c = parseSettings(SPEC, { X_PORT: '8080', X_NAMES: 'a, b,,c' });
  assert.equal(c.port, 8080);
  assert.equal(c.timeoutMs, 100);
  assert.deepEqual(c.names, ['A', 'B', 'C']);
  assert.equal(c.optional, undefined);
  assert.ok(Object.isFrozen(c));
  assert.throws(() => {
    (c as { port: number }).port = 1;
  }, TypeError);
});

test('every bad setting is reported together, naming the variable and the value', () => {
  try {
    parseSettings(SPEC, { X_PORT: '0', X_TIMEOUT_MS: '12x', X_OPTIONAL: '5' });
    assert.fail('expected a ConfigError');
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    assert.equal(err.code, 'WEFT_ERR_CONFIG');
    assert.equal(err.problems.length, 2);
    assert.match(err.problems[0], /^X_PORT="0": expected an integer from 1 to 65535$/);
    assert.match(err.problems[1], /^X_TIMEOUT_MS="12x": /);
  }
});

test('flags mirror environment variables', () => {
  assert.equal(flagFor('WEFT_PROXY_ADMIN_LISTEN_ADDR', 'WEFT_PROXY_'), '--admin-listen-addr');
});
