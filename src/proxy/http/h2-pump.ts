/**
 * Moves a body from one stream to another on the HTTP/2 paths, at a fraction of `pipe()`'s cost:
 * pipe() and `finished()` each hang 6-8 listeners on both streams per request (and take them
 * off again), which on the gRPC path was a measurable share of a hop's CPU (bench/profile-hops.sh,
 * node:events ~10% self time). A pump needs two listeners on the source, and one on the
 * destination only while it is full.
 *
 * It also keeps END_STREAM on the last DATA frame of a small body. Node's Http2Stream puts
 * END_STREAM on a DATA frame only when `end()` was called by the time the write carrying it is
 * handed to nghttp2 (a nextTick check in its write path); otherwise it waits for that write to
 * complete and sends an empty END_STREAM frame in a second socket write. Node reports a
 * request's end a few callbacks after its data, so pipe() always hit the second case: every gRPC
 * request went out as two TLS records and two syscalls, and the next hop woke up twice for it
 * (strace of both hops at 100 req/s). So the first chunks are held until the source ends or the
 * event loop's check phase comes (Node sends HTTP/2 frames in that phase too), and written with
 * `end(chunk)` when the source ended meanwhile. After that first turn chunks go straight through.
 * Only worth it where END_STREAM rides on DATA: a response that waits for trailers ends with its
 * trailers' HEADERS frame, so holding its data back would only split it from the response head.
 */
import type { Readable, Writable } from 'node:stream';

/** At most this much is held back in the first turn (a small request or response body). */
const HOLD_BYTES = 16 * 1024;

/**
 * Writes every chunk of `src` (which must not have ended yet) to `dst` with backpressure, then
 * ends `dst`. Stops (and leaves `dst`
 * alone) once `dst` is destroyed, so a source a retry hands to another destination is not also
 * written into a dead stream. Errors are not handled here: both streams have their owners' error
 * listeners. `holdFirstTurn`: keep END_STREAM on the last DATA frame of a small body (above).
 * Returns the number of bytes taken from `src` so far, as a getter.
 */
export function pump(src: Readable, dst: Writable, holdFirstTurn: boolean): { readonly bytes: number } {
  const state = { bytes: 0 };
  // The first turn's chunks, not yet written; undefined once released.
  let held: Buffer[] | undefined = holdFirstTurn ? [] : undefined;
  let heldBytes = 0;
  let timer: NodeJS.Immediate | undefined;
  const resume = () => src.resume();
  const write = (chunk: Buffer) => {
    if (!dst.write(chunk)) {
      src.pause();
      dst.once('drain', resume);
    }
  };
  const stop = () => {
    if (timer) clearImmediate(timer);
    src.removeListener('data', onData);
    src.removeListener('end', onEnd);
    dst.removeListener('drain', resume);
    // As unpipe() does: a source left flowing with no reader would drop what comes next, and a
    // retry that hands it to another destination must find it paused.
    if (src.listenerCount('data') === 0) src.pause();
  };
  /** The source goes on past the first turn: what is held is written, the rest as it comes. */
  const release = () => {
    timer = undefined;
    const chunks = held as Buffer[];
    held = undefined;
    if (dst.destroyed) return stop();
    for (const c of chunks) write(c);
  };
  function onData(chunk: Buffer) {
    if (dst.destroyed) return stop();
    state.bytes += chunk.length;
    if (!held) return write(chunk);
    held.push(chunk);
    heldBytes += chunk.length;
    if (heldBytes >= HOLD_BYTES) {
      if (timer) clearImmediate(timer);
      release();
    } else timer ??= setImmediate(release);
  }
  function onEnd() {
    src.removeListener('data', onData);
    if (timer) clearImmediate(timer);
    timer = undefined;
    const chunks = held;
    held = undefined;
    if (dst.destroyed) return;
    if (!chunks || chunks.length === 0) return void dst.end();
    for (let i = 0; i < chunks.length - 1; i++) dst.write(chunks[i]);
    dst.end(chunks[chunks.length - 1]);
  }
  src.on('data', onData);
  src.on('end', onEnd);
  src.resume(); // an attempt before this one may have paused it (h1-client.ts)
  return state;
}
