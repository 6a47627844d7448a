/**
 * Asks V8 for a full collection after many HTTP/2 streams without one, because each stream leaves
 * native memory behind that V8 cannot see and only a full collection frees.
 *
 * Node hands every received HTTP/2 header value to JS as an external string over nghttp2's buffer
 * (node_http_common.h), allocated straight into the old generation, and a stream's native handle
 * lives until its JS object is collected. V8 counts a few dozen bytes for each and nothing for what
 * they hold, so under HTTP/2 load the old generation grows slowly while the native memory behind
 * its dead objects piles up: heaptrack on a bench hop showed nghttp2 header buffers, their string
 * resources and V8's external-string table as 48 of 58 MiB of native heap at the peak. In the
 * bench's gRPC path V8's own first full collection came ~19 s in, with each hop's peak VmRSS at
 * 172-205 MiB, and paused 150-215 ms to finalize what had piled up: about 2.5 KiB per stream.
 *
 * So the proxy counts the HTTP/2 streams it handles (each side of each exchange) and asks for a
 * full collection, on the next turn of the event loop, once `streams` of them have gone by since
 * the last one. Full collections V8 makes on its own (seen through perf_hooks) reset the count,
 * so under heavy load, when V8 collects often enough, the proxy asks for none. HTTP/1 and opaque
 * traffic never count. One instance per process, shared by every proxy in it.
 */
import { constants, type PerformanceEntry, PerformanceObserver } from 'node:perf_hooks';
import v8 from 'node:v8';
import vm from 'node:vm';

export interface NativeMemoryGcOptions {
  /** HTTP/2 streams between full collections that make the proxy ask for one. */
  readonly streams: number;
}

export interface NativeMemoryGc {
  /** Full collections asked for so far (by every user of the process's instance). */
  readonly collections: () => number;
  /** Releases this user; the last one stops the counting. */
  stop(): void;
}

interface Shared {
  readonly threshold: number;
  readonly collect: () => void;
  readonly observer: PerformanceObserver;
  users: number;
  collections: number;
  scheduled: boolean;
}

let shared: Shared | undefined;
let streamsSinceFullGc = 0;

/** Counts one HTTP/2 stream (a no-op unless started). Cheap: it runs once per stream. */
export function countH2Stream(): void {
  const s = shared;
  if (s === undefined || ++streamsSinceFullGc < s.threshold || s.scheduled) return;
  s.scheduled = true;
  // Not in the middle of the stream's own handling: after this turn's I/O callbacks.
  setImmediate(() => {
    s.scheduled = false;
    if (shared !== s || streamsSinceFullGc < s.threshold) return;
    s.collect();
    s.collections++;
    streamsSinceFullGc = 0;
  });
}

/** HTTP/2 streams counted since the last full collection (ours or V8's). */
export function h2StreamsSinceFullGc(): number {
  return streamsSinceFullGc;
}

/**
 * Starts counting, or joins the process's instance (whose options, from its first user, stay).
 * `collect` is V8's full collection unless given (the policy test counts calls instead).
 */
export function startNativeMemoryGc(opts: NativeMemoryGcOptions, collect?: () => void): NativeMemoryGc {
  if (shared === undefined) {
    const observer = new PerformanceObserver((list) => {
      if (list.getEntries().some(isFullGc)) streamsSinceFullGc = 0;
    });
    observer.observe({ entryTypes: ['gc'] });
    shared = {
      threshold: opts.streams,
      collect: collect ?? fullGc(),
      observer,
      users: 0,
      collections: 0,
      scheduled: false,
    };
    streamsSinceFullGc = 0;
  }
  const s = shared;
  s.users++;
  let stopped = false;
  return {
    collections: () => s.collections,
    stop: () => {
      if (stopped) return;
      stopped = true;
      if (--s.users > 0) return;
      s.observer.disconnect();
      if (shared === s) shared = undefined;
    },
  };
}

function isFullGc(entry: PerformanceEntry): boolean {
  // @types/node leaves `detail` off PerformanceEntry; gc entries carry { kind, flags } there.
  const detail = (entry as { detail?: { kind?: number } }).detail;
  return detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR;
}

let gcFunction: (() => void) | undefined;

/**
 * V8's `gc()` without leaving it on any global object: the flag exposes it to contexts created
 * while it is set, one is made to fetch it, and the flag is turned off again.
 */
export function fullGc(): () => void {
  if (gcFunction === undefined) {
    v8.setFlagsFromString('--expose-gc');
    try {
      gcFunction = vm.runInNewContext('gc') as () => void;
    } finally {
      v8.setFlagsFromString('--no-expose-gc');
    }
  }
  return gcFunction;
}
