import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PeakEwma, pickP2c } from './balance-p2c-ewma.js';

const opts = { defaultRttMs: 30, decayMs: 10_000 };
const near = (actual: number, expected: number) =>
  assert.ok(Math.abs(actual - expected) < 1e-9, `${actual} is not ${expected}`);

test('an endpoint with no sample costs the default RTT', () => {
  const e = new PeakEwma(opts, 0);
  assert.equal(e.sampled, false);
  near(e.read(0), 30);
});

test('the first sample replaces the default, even below it', () => {
  const e = new PeakEwma(opts, 0);
  e.observe(2, 5);
  assert.equal(e.sampled, true);
  near(e.read(5), 2);
});

test('a sample above the estimate replaces it at once (peak)', () => {
  const e = new PeakEwma(opts, 0);
  e.observe(2, 0);
  e.observe(50, 1);
  near(e.read(1), 50);
});

test('a sample below the estimate pulls it exponentially by elapsed time', () => {
  const e = new PeakEwma(opts, 0);
  e.observe(50, 0);
  e.observe(10, 10_000); // one time constant later: weight e^-1 on the old estimate
  near(e.read(10_000), 50 * Math.exp(-1) + 10 * (1 - Math.exp(-1)));
  // Many samples in a short time move it little: the decay is by time, not by count.
  const f = new PeakEwma(opts, 0);
  f.observe(50, 0);
  for (let t = 1; t <= 100; t++) f.observe(10, t);
  const after100ms = f.read(100);
  near(after100ms, 10 + 40 * Math.exp(-100 / 10_000));
});

test('reading decays the estimate toward zero while no sample comes', () => {
  const e = new PeakEwma(opts, 0);
  e.observe(20, 0);
  near(e.read(10_000), 20 * Math.exp(-1));
  near(e.read(20_000), 20 * Math.exp(-2));
  near(e.read(20_000), 20 * Math.exp(-2)); // a second read at the same time changes nothing
});

test('p2c: nothing from nothing, the only one from one, the cheaper of two', () => {
  assert.equal(
    pickP2c(
      [],
      () => 0,
      () => 0.5,
    ),
    undefined,
  );
  assert.equal(
    pickP2c(
      ['a'],
      () => 0,
      () => 0.5,
    ),
    'a',
  );
  const cost = (c: string) => (c === 'cheap' ? 1 : 2);
  for (const r of [0, 0.3, 0.6, 0.99])
    assert.equal(
      pickP2c(['dear', 'cheap'], cost, () => r),
      'cheap',
    );
});

test('p2c draws two distinct candidates', () => {
  const seen: string[] = [];
  const draws = [0.99, 0.99]; // i = 2, then j = 1 (of the two others), never i again
  pickP2c(
    ['a', 'b', 'c'],
    (c) => {
      seen.push(c);
      return 0;
    },
    () => draws.shift()!,
  );
  assert.deepEqual(seen.sort(), ['b', 'c']);
});
