import assert from 'node:assert/strict';
import { PassThrough, Readable, Writable } from 'node:stream';
import { test } from 'node:test';
import { pump } from './h2-pump.js';

/** A writable that holds every write until `release()`: backpressure after `highWaterMark` bytes. */
function slowSink(highWaterMark: number) {
  const chunks: Buffer[] = [];
  const pending: (() => void)[] = [];
  let ended = false;
  const sink = new Writable({
    highWaterMark,
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk);
      pending.push(cb);
    },
    final(cb) {
      ended = true;
      cb();
    },
  });
  const release = () => {
    for (const cb of pending.splice(0)) cb();
  };
  return { sink, chunks, release, isEnded: () => ended };
}

for (const hold of [true, false]) {
  test(`moves every byte in order, honours backpressure, then ends the destination (hold ${hold})`, async () => {
    const parts = Array.from({ length: 50 }, (_, i) => Buffer.alloc(1000, i));
    const src = Readable.from(parts, { objectMode: false });
    const { sink, chunks, release, isEnded } = slowSink(4096);
    const moved = pump(src, sink, hold);
    // The sink never calls back on its own: the source must pause instead of buffering all 50 KB
    // (holding, the pump keeps back at most 16 KiB in its first turn, past the sink's mark).
    const bound = 4096 + 1000 + (hold ? 16 * 1024 : 0);
    while (!isEnded()) {
      await new Promise((r) => setImmediate(r));
      assert.ok(sink.writableLength <= bound, `sink buffered ${sink.writableLength} bytes`);
      release();
    }
    assert.deepEqual(Buffer.concat(chunks), Buffer.concat(parts));
    assert.equal(moved.bytes, 50_000);
  });
}

test('a small body that ends in its first turn is written with end(), so END_STREAM rides on it', async () => {
  const src = new PassThrough();
  const calls: string[] = [];
  const dst = new Writable({
    write(chunk: Buffer, _enc, cb) {
      // Http2Stream looks on the next tick whether end() came with the write.
      process.nextTick(() => calls.push(`write ${chunk.length}, ended: ${this.writableEnded}`));
      cb();
    },
  });
  pump(src, dst, true);
  src.end(Buffer.from('12345'));
  await new Promise((r) => dst.once('finish', r));
  // end(chunk) marks the stream ended before its write goes out: what Http2Stream checks.
  assert.deepEqual(calls, ['write 5, ended: true']);
});

test('stops writing into a destroyed destination, leaving the source to its next reader', async () => {
  const src = new PassThrough();
  const dead = new PassThrough();
  pump(src, dead, true);
  dead.destroy();
  const live = new PassThrough();
  const got: Buffer[] = [];
  live.on('data', (c: Buffer) => got.push(c));
  pump(src, live, true);
  src.end(Buffer.from('body'));
  await new Promise((r) => live.once('end', r));
  assert.equal(Buffer.concat(got).toString(), 'body');
  assert.equal(dead.writableEnded, false);
});
