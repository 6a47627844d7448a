import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { eventually } from '../../test/support/eventually.js';
import { countH2Stream, fullGc, h2StreamsSinceFullGc, startNativeMemoryGc } from './native-memory-gc.js';

const countStreams = (n: number) => {
  for (let i = 0; i < n; i++) countH2Stream();
};

test('asks for one full collection, on the next turn, each time the HTTP/2 streams reach the limit', async () => {
  let collected = 0;
  const gc = startNativeMemoryGc({ streams: 100 }, () => collected++);
  try {
    countStreams(99);
    await nextTurn();
    assert.equal(collected, 0, 'below the limit');
    countStreams(1);
    assert.equal(collected, 0, 'not inside the stream that reached it');
    countStreams(50);
    await nextTurn();
    assert.equal(collected, 1, 'once, however many streams came in the same turn');
    assert.equal(h2StreamsSinceFullGc(), 0);
    countStreams(100);
    await nextTurn();
    assert.equal(collected, 2);
    assert.equal(gc.collections(), 2);
  } finally {
    gc.stop();
  }
  countStreams(500);
  await nextTurn();
  assert.equal(collected, 2, 'stopped: nothing more');
});

test('every proxy of a process shares one count, which stops with the last of them', async () => {
  let collected = 0;
  const first = startNativeMemoryGc({ streams: 10 }, () => collected++);
  const second = startNativeMemoryGc({ streams: 10 }, () => collected++);
  countStreams(10);
  await nextTurn();
  assert.equal(collected, 1);
  first.stop();
  countStreams(10);
  await nextTurn();
  assert.equal(collected, 2, 'still counting for the second');
  second.stop();
  countStreams(10);
  await nextTurn();
  assert.equal(collected, 2);
});

test("V8's own full collections reset the count; ours is one, and gc() stays off the global object", async () => {
  const gc = startNativeMemoryGc({ streams: 1_000_000 });
  try {
    countStreams(1000);
    assert.equal(h2StreamsSinceFullGc(), 1000);
    fullGc()();
    // perf_hooks reports the collection after it: the count drops once it does.
    await eventually(() => assert.equal(h2StreamsSinceFullGc(), 0));
    assert.equal((globalThis as { gc?: unknown }).gc, undefined);
    const { runInNewContext } = await import('node:vm');
    assert.equal(runInNewContext('typeof gc'), 'undefined', 'the flag is off again for new contexts');
  } finally {
    gc.stop();
  }
});
