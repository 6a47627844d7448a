import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { eventually } from '../../test/support/eventually.js';
import { residentOutsideHeap, startNativeMemoryGc } from './native-memory-gc.js';

const MiB = 1024 * 1024;

test('asks for one full collection each time memory outside the heap has grown by the slack', async () => {
  let outside = 100 * MiB;
  let collected = 0;
  const gc = startNativeMemoryGc(
    { slackBytes: 10 * MiB, intervalMs: 2 },
    () => outside,
    () => collected++,
  );
  try {
    outside += 9 * MiB;
    await sleep(40);
    assert.equal(collected, 0, 'below the slack');
    outside += MiB;
    await eventually(() => assert.equal(collected, 1));
    // malloc keeps what the collection freed: that level is the new baseline, not a reason to
    // collect again on every check.
    await sleep(40);
    assert.equal(collected, 1);
    outside += 10 * MiB;
    await eventually(() => assert.equal(collected, 2));
    assert.equal(gc.collections(), 2);
  } finally {
    gc.stop();
  }
});

test("the collection is V8's full GC, fetched without putting gc() on the global object", async () => {
  let growing = 0;
  const gc = startNativeMemoryGc({ slackBytes: 1, intervalMs: 1 }, () => (growing += 2));
  try {
    await eventually(() => assert.ok(gc.collections() >= 2));
    assert.equal((globalThis as { gc?: unknown }).gc, undefined);
  } finally {
    gc.stop();
  }
});

test('resident memory outside the heap grows with native allocations the heap does not hold', () => {
  const before = residentOutsideHeap();
  assert.ok(Number.isFinite(before) && before < process.memoryUsage.rss(), String(before));
  // 64 MiB of malloc'd, touched memory outside the V8 heap.
  const native = Buffer.alloc(64 * MiB, 1);
  const grown = residentOutsideHeap() - before;
  assert.ok(grown > 48 * MiB && grown < 80 * MiB, `grew by ${(grown / MiB).toFixed(1)} MiB`);
  assert.equal(native[native.length - 1], 1);
});
