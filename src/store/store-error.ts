/**
 * The store's coded errors. They extend the one Weft error type (src/lib/errors.ts) so the edges
 * (API handlers, the CLI's main) map them like any other; `code` is stable and may be asserted on.
 */
import { WeftError } from '../lib/errors.js';

/** One thing wrong with a resource: where (file, line, field path) and what. */
export interface ResourceProblem {
  /** Source file, when the resource came from one. */
  readonly file?: string;
  /** 1-based line in `file`, when known. */
  readonly line?: number;
  /** Field path such as `spec.ports[0].port`; empty for the document as a whole. */
  readonly path: string;
  readonly message: string;
}

/** Formats a problem as `file:line: path: message` (omitting the parts that are unknown). */
export function formatProblem(p: ResourceProblem): string {
  const where = p.file === undefined ? '' : `${p.file}:${p.line ?? '?'}: `;
  return `${where}${p.path === '' ? '' : `${p.path}: `}${p.message}`;
}

/** Any failure of the store: bad input, a conflict, an unreadable state directory, a lost watch. */
export class StoreError extends WeftError {
  constructor(
    code: string,
    httpStatus: number,
    reason: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(code, httpStatus, 'proxy_internal_error', reason, message, options);
  }
}

/** One or more resources are invalid; every problem found is listed, none was stored. */
export class ValidationError extends StoreError {
  readonly problems: readonly ResourceProblem[];
  constructor(problems: readonly ResourceProblem[]) {
    super(
      'WEFT_ERR_INVALID_RESOURCE',
      422,
      'invalid resource',
      `invalid resource:\n  ${problems.map(formatProblem).join('\n  ')}`,
    );
    this.problems = problems;
  }
}

/** An apply carried a metadata.resourceVersion that is no longer the stored one. */
export class ConflictError extends StoreError {
  constructor(what: string, expected: string, actual: string) {
    super(
      'WEFT_ERR_CONFLICT',
      409,
      'conflict',
      `${what}: resourceVersion ${expected} is stale (stored: ${actual}); get it again and retry`,
    );
  }
}

/** A watch asked for changes older than the bounded history keeps; the watcher must re-list. */
export class ExpiredError extends StoreError {
  constructor(fromResourceVersion: string, oldest: string) {
    super(
      'WEFT_ERR_STORE_EXPIRED',
      410,
      'expired',
      `resourceVersion ${fromResourceVersion} is older than the history kept (from ${oldest}); list again`,
    );
  }
}

/** A watcher's bounded queue overflowed because its listener fell behind; it was dropped. */
export class WatcherOverflowError extends StoreError {
  constructor(maxQueuedEvents: number) {
    super(
      'WEFT_ERR_WATCH_OVERFLOW',
      503,
      'watcher too slow',
      `watcher fell more than ${maxQueuedEvents} events behind and was dropped; list again`,
    );
  }
}

/** The state directory holds a file that cannot be read as store state. */
export class StateCorruptError extends StoreError {
  constructor(path: string, cause: unknown) {
    const detail = cause instanceof Error ? cause.message : String(cause);
    super('WEFT_ERR_STORE_CORRUPT', 500, 'corrupt state', `cannot read store state ${path}: ${detail}`, {
      cause,
    });
  }
}

/** Another live process held the state directory's lock for longer than the lock timeout. */
export class StoreLockedError extends StoreError {
  constructor(lockPath: string, holder: string, timeoutMs: number) {
    super(
      'WEFT_ERR_STORE_LOCKED',
      503,
      'store locked',
      `could not lock ${lockPath} within ${timeoutMs} ms (held by ${holder}); if no weft process ` +
        'uses this state directory, remove the lock file',
    );
  }
}

/** The store was closed; no further reads, writes or watches. */
export class StoreClosedError extends StoreError {
  constructor() {
    super('WEFT_ERR_STORE_CLOSED', 503, 'store closed', 'store is closed');
  }
}
