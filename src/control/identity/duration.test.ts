import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatDuration, parseDurationMs } from './duration.js';

describe('durations', () => {
  const parse = parseDurationMs(5_000, 90 * 86_400_000);
  it('accept units and bare seconds', () => {
    assert.equal(parse('20s'), 20_000);
    assert.equal(parse('24h'), 86_400_000);
    assert.equal(parse('90m'), 5_400_000);
    assert.equal(parse('7d'), 604_800_000);
    assert.equal(parse('30'), 30_000);
  });
  it('refuse garbage and out-of-range values', () => {
    for (const bad of ['', 'h', '1.5h', '-3s', '1s', '100d', '20 s'])
      assert.throws(() => parse(bad), /duration/, bad);
  });
  it('format back', () => {
    assert.equal(formatDuration(86_400_000), '24h');
    assert.equal(formatDuration(7 * 86_400_000), '7d');
    assert.equal(formatDuration(20_000), '20s');
    assert.equal(formatDuration(1_500), '1500ms');
  });
});
