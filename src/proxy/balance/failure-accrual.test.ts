import assert from 'node:assert/strict';
import { test } from 'node:test';
import { backoffMs, DEFAULT_FAILURE_ACCRUAL, PenaltyBox } from './failure-accrual.js';

const opts = DEFAULT_FAILURE_ACCRUAL;
const mid = () => 0.5; // no jitter

function failTimes(box: PenaltyBox, n: number, nowMs: number): void {
  for (let i = 0; i < n; i++) box.record('failure', box.started(), nowMs);
}

test('backoff doubles from 1 s, is capped at 60 s, and jitters by ±50%', () => {
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5, 6, 7, 20, 2000].map((a) => backoffMs(a, opts, mid)),
    [1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000, 60000],
  );
  assert.equal(
    backoffMs(0, opts, () => 0),
    500,
  );
  assert.equal(
    backoffMs(0, opts, () => 0.999999),
    1000 * (1 + 0.5 * (2 * 0.999999 - 1)),
  );
  assert.equal(
    backoffMs(3, opts, () => 0),
    4000,
  );
  assert.equal(
    backoffMs(10, opts, () => 0),
    30_000,
  );
  assert.equal(
    backoffMs(10, opts, () => 0.999),
    60_000,
    'jitter never exceeds the cap',
  );
});

test('the box opens after 7 consecutive failures, not after 6 and a success', () => {
  const box = new PenaltyBox(opts, mid);
  failTimes(box, 6, 0);
  box.record('success', box.started(), 0);
  failTimes(box, 6, 0);
  assert.equal(box.availability(0), 'ready');
  box.record('cancelled', box.started(), 0); // neither breaks nor extends the run
  assert.equal(box.availability(0), 'ready');
  failTimes(box, 1, 100);
  assert.equal(box.retryAtMs, 1100);
  assert.equal(box.availability(100), 'blocked');
  assert.equal(box.availability(1099), 'blocked');
});

test('after the backoff exactly one probe goes; its success closes the box', () => {
  const box = new PenaltyBox(opts, mid);
  failTimes(box, 7, 0);
  // Requests already in flight when it opened report late: they do not change the box.
  box.record('failure', false, 500);
  box.record('success', false, 600);
  assert.equal(box.availability(999), 'blocked');
  assert.equal(box.availability(1000), 'probe');
  box.claimProbe(1000);
  assert.equal(box.availability(1000), 'blocked', 'a second pick gets no probe');
  assert.equal(box.started(), true);
  assert.equal(box.availability(5000), 'blocked', 'still one probe while it is in flight');
  assert.equal(box.record('success', true, 5000), true);
  assert.equal(box.retryAtMs, undefined);
  assert.equal(box.availability(5000), 'ready');
  failTimes(box, 7, 6000);
  assert.equal(box.retryAtMs, 7000, 'a closed box starts over from the first backoff');
});

test('a failed probe reopens the box with the next backoff, up to the cap', () => {
  const box = new PenaltyBox(opts, mid);
  failTimes(box, 7, 0);
  let nowMs = 0;
  const backoffs: number[] = [];
  for (let i = 0; i < 9; i++) {
    const retryAt = box.retryAtMs!;
    backoffs.push(retryAt - nowMs);
    nowMs = retryAt;
    assert.equal(box.availability(nowMs), 'probe');
    box.claimProbe(nowMs);
    const isProbe = box.started();
    assert.equal(isProbe, true);
    assert.equal(box.record('failure', isProbe, nowMs), false);
  }
  assert.deepEqual(backoffs, [1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000]);
});

test('a cancelled probe frees the slot; a claimed probe never started lapses after 1 s', () => {
  const box = new PenaltyBox(opts, mid);
  failTimes(box, 7, 0);
  box.claimProbe(1000);
  assert.equal(box.started(), true);
  box.record('cancelled', true, 1500);
  assert.equal(box.availability(1500), 'probe');
  box.claimProbe(1500);
  assert.equal(box.availability(2499), 'blocked');
  assert.equal(box.availability(2500), 'probe');
  assert.equal(box.retryAtMs, 1000, 'neither changed the backoff');
});

test('a connect failure opens the box at once; a probe that cannot connect reopens it with the next backoff', () => {
  const box = new PenaltyBox(opts, mid);
  box.record('connect-failure', box.started(), 100);
  assert.equal(box.retryAtMs, 1100);
  assert.equal(box.availableAtMs(), 1100);
  box.record('connect-failure', false, 200); // late reports of requests started before it opened
  assert.equal(box.retryAtMs, 1100);
  box.claimProbe(1100);
  assert.equal(box.availableAtMs(), 2100, 'the claim lapses unless the probe starts');
  assert.equal(box.started(), true);
  assert.equal(box.availableAtMs(), undefined, 'a probe in flight: its outcome decides');
  box.record('connect-failure', true, 1100);
  assert.equal(box.retryAtMs, 3100);
});
