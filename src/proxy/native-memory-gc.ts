/**
 * Collects the V8 heap when memory outside it has grown, because V8 cannot see that memory.
 *
 * Node hands every received HTTP/2 header value to JS as an external string over nghttp2's
 * buffer (node_http_common.h), allocated straight into the old generation. V8 counts a few dozen
 * bytes for each and nothing for the buffer, so under HTTP/2 load the old generation grows slowly
 * while the malloc'd buffers behind its dead strings pile up until the next full collection:
 * heaptrack on a bench hop showed nghttp2 header buffers, their string resources and V8's
 * external-string table as 48 of 58 MiB of native heap at the peak, and the hop's RssAnon grew to
 * 130-150 MiB against a V8 heap of 30-45 MiB.
 *
 * So: every `intervalMs` the anonymous resident size outside the V8 heap (RssAnon minus the
 * heap's committed size) is compared with its level after the last collection, and a full collection is asked for
 * when it has grown by `slackBytes`. malloc keeps freed memory for reuse rather than returning
 * it, so the level after a collection stays near its peak; new growth past it means live native
 * memory again. A proxy that does not use HTTP/2 never reaches the slack and pays one
 * /proc/self/statm read per interval.
 *
 * Measured in the bench's gRPC path (20 s at max after 6 s at 1000 req/s, ABBA pairs): each hop's
 * peak VmRSS fell from 172-205 MiB to 123-129 MiB with the 16 MiB default, from 1-2 collections
 * of 45-67 ms; CPU per request stayed within the runs' spread. Without it V8's own first full
 * collection came ~19 s in and paused 150-215 ms to finalize the strings piled up by then. The
 * cost: the asked-for collection is one atomic pause, and when it lands in a short latency window
 * it shows in that window's p99.
 */
import { readFileSync } from 'node:fs';
import v8 from 'node:v8';
import vm from 'node:vm';

export interface NativeMemoryGcOptions {
  readonly slackBytes: number;
  readonly intervalMs: number;
}

export interface NativeMemoryGc {
  /** Full collections asked for so far. */
  readonly collections: () => number;
  stop(): void;
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

function anonymousResident(): number {
  try {
    // statm: size resident shared text lib data dt, in pages; shared = file-backed resident.
    const [, resident, shared] = readFileSync('/proc/self/statm', 'latin1').split(' ').map(Number);
    if (resident > 0 && shared >= 0) {
      // The page size, from RSS in bytes over RSS in pages (a power of two: 4 KiB, 16 KiB, ...).
      pageBytes ??= 2 ** Math.round(Math.log2(process.memoryUsage.rss() / resident));
      return (resident - shared) * pageBytes;
    }
  } catch {
    // not Linux
  }
  return process.memoryUsage.rss();
}

/**
 * Starts the check. `measure` and `collect` are the process's own unless given (the policy test
 * drives them).
 */
export function startNativeMemoryGc(
  opts: NativeMemoryGcOptions,
  measure: () => number = residentOutsideHeap,
  collect: () => void = fullGc(),
): NativeMemoryGc {
  let level = measure();
  let count = 0;
  const timer = setInterval(() => {
    if (measure() - level < opts.slackBytes) return;
    collect();
    count++;
    level = measure();
  }, opts.intervalMs);
  timer.unref();
  return { collections: () => count, stop: () => clearInterval(timer) };
}

/**
 * V8's `gc()` without putting it on the global object, where any code could call it: the flag
 * exposes it to contexts created from now on, and one is made to fetch it.
 */
function fullGc(): () => void {
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc') as () => void;
}
