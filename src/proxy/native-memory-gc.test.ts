import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { runInNewContext } from 'node:vm';
import { eventually } from '../../test/support/eventually.js';
import { fullGc, residentOutsideHeap, startNativeMemoryGc } from './native-memory-gc.js';

const MiB = 1024 * 1024;

test('asks for one full collection each time memory outside the heap has grown by the slack', async () => {
  let outside = 100 * MiB;
  let collected = 0;
  const gc = startNativeMemoryGc(
    { slackBytes: 10 * MiB, intervalMs: 2, minGapMs: 0 },
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

test('asks at most once per gap, however fast memory grows', async () => {
  let outside = 0;
  let clock = 0;
  let collected = 0;
  const gc = startNativeMemoryGc(
    { slackBytes: MiB, intervalMs: 2, minGapMs: 10_000 },
    () => (outside += 2 * MiB),
    () => collected++,
    () => clock,
  );
  try {
    await eventually(() => assert.equal(collected, 1));
    await sleep(40);
    assert.equal(collected, 1, 'within the gap');
    clock += 10_000;
    await eventually(() => assert.equal(collected, 2));
  } finally {
    gc.stop();
  }
});

test('every proxy of a process shares one instance, which stops with the last of them', async () => {
  let outside = 0;
  let collected = 0;
  const opts = { slackBytes: MiB, intervalMs: 2, minGapMs: 0 };
  const first = startNativeMemoryGc(
    opts,
    () => outside,
    () => collected++,
  );
  const second = startNativeMemoryGc(
    opts,
    () => outside,
    () => collected++,
  );
  outside += MiB;
  await eventually(() => assert.equal(collected, 1));
  await sleep(40);
  assert.equal(collected, 1, 'one collection for both proxies, not one each');
  assert.equal(second.collections(), 1);
  first.stop();
  outside += MiB;
  await eventually(() => assert.equal(collected, 2, 'still checking for the second'));
  second.stop();
  outside += 10 * MiB;
  await sleep(40);
  assert.equal(collected, 2, 'stopped');
});

test("the collection is V8's full GC, and gc() stays off every global object", async () => {
  const collections: number[] = [];
  const { PerformanceObserver, constants } = await import('node:perf_hooks');
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries())
      if ((e as { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR)
        collections.push(e.startTime);
  });
  observer.observe({ entryTypes: ['gc'] });
  try {
    fullGc()();
    await eventually(() => assert.ok(collections.length >= 1, 'perf_hooks saw a full collection'));
    assert.equal((globalThis as { gc?: unknown }).gc, undefined);
    assert.equal(runInNewContext('typeof gc'), 'undefined', 'the flag is off again for new contexts');
  } finally {
    observer.disconnect();
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
