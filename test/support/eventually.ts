/** Waiting without fixed sleeps: retry an assertion, or wait for one line on a stream. */
import type { Readable } from 'node:stream';

export interface EventuallyOptions {
  /** Give up after this long (default 10 s). */
  timeoutMs?: number;
  /** Pause between attempts (default 50 ms). */
  intervalMs?: number;
}

/**
 * Calls `fn` until it returns (or resolves) without throwing, and returns its value. An attempt
 * still pending at the deadline is abandoned. On timeout throws an Error naming the attempt count,
 * with the last failure as `cause` and its message appended.
 */
export async function eventually<T>(fn: () => T | Promise<T>, opts: EventuallyOptions = {}): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const intervalMs = opts.intervalMs ?? 50;
  const deadline = Date.now() + timeoutMs;
  let attempts = 0;
  let last: unknown = new Error('no attempt finished');
  while (Date.now() < deadline) {
    attempts++;
    try {
      return await withDeadline(Promise.resolve().then(fn), deadline - Date.now());
    } catch (err) {
      last = err;
    }
    const pause = Math.min(intervalMs, deadline - Date.now());
    if (pause > 0) await new Promise((r) => setTimeout(r, pause));
  }
  const detail = last instanceof Error ? last.message : String(last);
  throw new Error(`eventually: gave up after ${timeoutMs} ms (${attempts} attempts): ${detail}`, {
    cause: last,
  });
}

function withDeadline<T>(p: Promise<T>, remainingMs: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('attempt still pending at the deadline')), remainingMs);
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}

/**
 * Resolves with the first complete line (without its newline) of `stream` that satisfies
 * `predicate`. Rejects when the stream ends or the time runs out first; the error lists the lines
 * seen. Only data arriving after the call is examined; its listeners are removed once settled.
 * Attaching a 'data' listener switches the stream to flowing mode, so another consumer (or
 * `resume()`) must keep reading it afterwards.
 */
export function onceLine(
  stream: Readable,
  predicate: (line: string) => boolean,
  timeoutMs = 10_000,
): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const seen: string[] = [];
    let partial = '';
    const finish = (err: Error | null, line?: string) => {
      clearTimeout(timer);
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('close', onEnd);
      if (err) reject(err);
      else resolve(line as string);
    };
    const onData = (chunk: Buffer | string) => {
      partial += chunk.toString();
      let nl = partial.indexOf('\n');
      while (nl >= 0) {
        const line = partial.slice(0, nl).replace(/\r$/, '');
        partial = partial.slice(nl + 1);
        seen.push(line);
        if (predicate(line)) return finish(null, line);
        nl = partial.indexOf('\n');
      }
    };
    const onEnd = () =>
      finish(new Error(`onceLine: stream ended without a match; lines:\n${seen.join('\n')}`));
    const timer = setTimeout(
      () => finish(new Error(`onceLine: no match within ${timeoutMs} ms; lines:\n${seen.join('\n')}`)),
      timeoutMs,
    );
    stream.on('data', onData);
    stream.once('end', onEnd);
    stream.once('close', onEnd);
  });
}
