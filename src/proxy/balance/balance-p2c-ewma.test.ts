import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LatencyEwma, pickP2c } from './balance-p2c-ewma.js';

const opts = { defaultRttMs: 30, decayMs: 10_000, smoothingMs: 250 };
const near = (actual: number, expected: number, tolerance = 1e-9) =>
  assert.ok(Math.abs(actual - expected) < tolerance, `${actual} is not ${expected}`);

test('an endpoint with no sample costs the default RTT', () => {
  const e = new LatencyEwma(opts, 0);
  assert.equal(e.sampled, false);
  near(e.read(0), 30);
});

test('the first sample replaces the default, even below it', () => {
  const e = new LatencyEwma(opts, 0);
  e.observe(2, 5);
  assert.equal(e.sampled, true);
  near(e.read(5), 2);
});

test('a sample moves the estimate by the time since the previous sample, up or down', () => {
  const e = new LatencyEwma(opts, 0);
  e.observe(2, 0);
  e.observe(50, 250); // one smoothing constant later: weight 1 - e^-1 on the new sample
  const up = 2 * Math.exp(-250 / 10_000); // decayed toward zero meanwhile
  near(e.read(250), up + (50 - up) * (1 - Math.exp(-1)));
  const f = new LatencyEwma(opts, 0);
  f.observe(50, 0);
  f.observe(10, 250);
  const down = 50 * Math.exp(-250 / 10_000);
  near(f.read(250), down + (10 - down) * (1 - Math.exp(-1)));
});

test('one outlier among frequent samples barely moves the estimate (no peak rule)', () => {
  // A 1 ms endpoint sampled every 4 ms; one 20 ms response (a GC pause, a late timer).
  const e = new LatencyEwma(opts, 0);
  let t = 0;
  for (; t <= 1000; t += 4) e.observe(1, t);
  e.observe(20, t);
  assert.ok(e.read(t) < 1.4, `${e.read(t)}`);
  // A burst of responses handled together after a pause of ours weighs as much as one.
  for (let i = 0; i < 10; i++) e.observe(20, t);
  assert.ok(e.read(t) < 1.4, `${e.read(t)}`);
});

test('an endpoint that turns slow is seen within tens of milliseconds of its samples', () => {
  const e = new LatencyEwma(opts, 0);
  let t = 0;
  for (; t <= 1000; t += 4) e.observe(1, t);
  const turnedAt = t;
  while (e.read(t) < 2) e.observe(10, (t += 4));
  assert.ok(t - turnedAt <= 40, `estimate doubled after ${t - turnedAt} ms`);
  while (e.read(t) < 9) e.observe(10, (t += 4));
  assert.ok(t - turnedAt <= 700, `estimate reached 9 ms after ${t - turnedAt} ms`);
});

test('a sample after a long silence replaces the stale estimate almost whole', () => {
  const e = new LatencyEwma(opts, 0);
  e.observe(2, 0);
  e.observe(10, 5000);
  near(e.read(5000), 10, 1e-6);
});

test('reading decays the estimate toward zero while no sample comes', () => {
  const e = new LatencyEwma(opts, 0);
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
