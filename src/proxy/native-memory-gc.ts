/**
 * Asks V8 for a full collection when the proxy's memory outside the V8 heap has grown, because
 * under HTTP/2 load most of that memory is held by dead objects V8 cannot see the weight of.
 *
 * Node hands every received HTTP/2 header value to JS as an external string over nghttp2's buffer
 * (node_http_common.h), allocated straight into the old generation, and a stream's native handle
 * lives until its JS object is collected. V8 counts a few dozen bytes for each and nothing for what
 * they hold, so the old generation grows slowly while the native memory behind its dead objects
 * piles up: heaptrack on a bench hop showed nghttp2 header buffers, their string resources and V8's
 * external-string table as 48 of 58 MiB of native heap at the peak. In the bench's gRPC path V8's
 * own first full collection came 19-31 s in, with each hop's peak VmRSS at 172-205 MiB, and paused
 * 140-230 ms to finalize what had piled up.
 *
 * So every `intervalMs` the anonymous resident memory outside the heap (RssAnon minus the heap's
 * committed size) is compared with its level after the last collection asked for, and one is asked
 * for when it has grown by `slackBytes`, at most once per `minGapMs`. malloc keeps what a
 * collection frees for reuse, so the level stays near the peak and the next request comes only when
 * memory grows past it: in the bench (16 MiB) that was 1-2 collections per hop in 40 s, and peak
 * VmRSS fell to 120-139 MiB, CPU per request within the runs' spread. Asked-for collections must
 * stay rare: each costs far more than its pause (a variant that asked after every 5,000 HTTP/2
 * streams, ~20 times in 30 s, doubled CPU per request), hence the trigger on resident memory and
 * the gap. Even so the p99 at 1000 req/s got worse (median of 8 runs 57 ms, against 16 ms over 9
 * runs without it), so it is off unless
 * --native-gc-slack-mb is set: a choice of memory over tail latency for the operator to make.
 * One instance per process, shared by every proxy in it.
 */
import { readFileSync } from 'node:fs';
import v8 from 'node:v8';
import vm from 'node:vm';

export interface NativeMemoryGcOptions {
  readonly slackBytes: number;
  readonly intervalMs: number;
  /** Least time between two asked-for collections. */
  readonly minGapMs: number;
}

export interface NativeMemoryGc {
  /** Full collections asked for so far (by the process's instance). */
  readonly collections: () => number;
  /** Releases this user; the last one stops the checks. */
  stop(): void;
}

interface Shared {
  timer: NodeJS.Timeout | undefined;
  users: number;
  collections: number;
}

let shared: Shared | undefined;

/**
 * Starts the checks, or joins the process's instance (whose options, from its first user, stay).
 * `measure`, `collect` and `now` are the process's own unless given (the policy test drives them).
 */
export function startNativeMemoryGc(
  opts: NativeMemoryGcOptions,
  measure: () => number = residentOutsideHeap,
  collect: () => void = fullGc(),
  now: () => number = Date.now,
): NativeMemoryGc {
  if (shared === undefined) {
    const started: Shared = { timer: undefined, users: 0, collections: 0 };
    let level = measure();
    let lastAt = Number.NEGATIVE_INFINITY;
    started.timer = setInterval(() => {
      if (measure() - level < opts.slackBytes || now() - lastAt < opts.minGapMs) return;
      collect();
      started.collections++;
      lastAt = now();
      level = measure();
    }, opts.intervalMs);
    started.timer.unref();
    shared = started;
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
      clearInterval(s.timer);
      if (shared === s) shared = undefined;
    },
  };
}

/**
 * Anonymous resident bytes outside the V8 heap: malloc'd native state and buffers. Pages of the
 * node binary (about 44 MiB, paged in as new code paths first run) are left out where Linux's
 * /proc/self/statm says which they are, so warming up is not taken for native growth.
 */
export function residentOutsideHeap(): number {
  return anonymousResident() - v8.getHeapStatistics().total_heap_size;
}

let pageBytes: number | undefined;
let noStatm = false;

function anonymousResident(): number {
  if (!noStatm) {
    try {
      // statm: size resident shared text lib data dt, in pages; shared: file-backed and shmem.
      const [, resident, sharedPages] = readFileSync('/proc/self/statm', 'latin1').split(' ').map(Number);
      if (resident > 0 && sharedPages >= 0) {
        // The page size, from RSS in bytes over RSS in pages (a power of two: 4 KiB, 16 KiB, ...).
        pageBytes ??= 2 ** Math.round(Math.log2(process.memoryUsage.rss() / resident));
        return (resident - sharedPages) * pageBytes;
      }
    } catch {
      noStatm = true; // not Linux: RSS it is, from now on
    }
  }
  return process.memoryUsage.rss();
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
