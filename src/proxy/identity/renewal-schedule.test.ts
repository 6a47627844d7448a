import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GENERATION_RENEW_WINDOW_MS, generationRenewDelayMs, renewDelayMs } from './renewal-schedule.js';

describe('renewDelayMs', () => {
  const notBefore = 1_000_000;
  const notAfter = notBefore + 20_000;

  it('renews at 70% of the lifetime, within ±5% of it', () => {
    assert.equal(
      renewDelayMs(notBefore, notAfter, notBefore, () => 0.5),
      14_000,
    );
    assert.equal(
      renewDelayMs(notBefore, notAfter, notBefore, () => 0),
      13_000,
    );
    assert.equal(
      renewDelayMs(notBefore, notAfter, notBefore, () => 1),
      15_000,
    );
  });

  it('counts from now, and is never negative', () => {
    assert.equal(
      renewDelayMs(notBefore, notAfter, notBefore + 4_000, () => 0.5),
      10_000,
    );
    assert.equal(
      renewDelayMs(notBefore, notAfter, notAfter + 1, () => 0.5),
      0,
    );
  });
});

describe('generationRenewDelayMs', () => {
  it('spreads renewals over a few seconds', () => {
    assert.equal(
      generationRenewDelayMs(() => 0),
      0,
    );
    assert.ok(generationRenewDelayMs(() => 0.999) < GENERATION_RENEW_WINDOW_MS);
    assert.ok(GENERATION_RENEW_WINDOW_MS <= 5_000);
  });
});
