/**
 * Applying a batch of resources, as `PUT /api/v1/apply` does. The store has no multi-resource
 * transaction, so the batch is made as safe as it can be without one: every resource is
 * validated (and every stale resourceVersion detected) before the first is applied, so a bad
 * batch applies nothing. The resources are then applied one by one, in order; a store failure
 * in the middle (disk full, lock timeout, a concurrent writer changing a resourceVersion) leaves
 * the resources before it applied, and the error says exactly which ones (PartialApplyError).
 */
import { WeftError } from '../../lib/errors.js';
import { describeResource, formatFieldPath, type Resource, validateResource } from '../../store/resource.js';
import type { Store } from '../../store/store.js';
import { ConflictError } from '../../store/store-error.js';
import type { ApplyProblem } from './api-errors.js';

/** What applying one resource did. */
export type ApplyAction = 'created' | 'configured' | 'unchanged';

export interface ApplyResult {
  /** Position of the resource in the request. */
  readonly index: number;
  readonly action: ApplyAction;
  /** The resource as stored. */
  readonly resource: Resource;
}

/** The batch is invalid; `problems` lists every problem of every resource; nothing was applied. */
export class InvalidApplyError extends WeftError {
  readonly problems: readonly ApplyProblem[];
  constructor(problems: readonly ApplyProblem[]) {
    super(
      'WEFT_ERR_INVALID_RESOURCE',
      422,
      'proxy_internal_error',
      'invalid resource',
      `${problems.length} problem(s) in the resources; nothing was applied`,
    );
    this.problems = problems;
  }
}

/** Applying resource `failedIndex` failed with `failure`; `applied` were applied before it. */
export class PartialApplyError extends WeftError {
  constructor(
    readonly failure: WeftError | Error,
    readonly failedIndex: number,
    readonly applied: readonly ApplyResult[],
  ) {
    const code = failure instanceof WeftError ? failure.code : 'WEFT_ERR_INTERNAL';
    super(
      code,
      failure instanceof WeftError ? failure.httpStatus : 500,
      'proxy_internal_error',
      'apply failed',
      `resources[${failedIndex}] failed after ${applied.length} resource(s) were applied ` +
        `(the resources before it stay applied, the ones after it were not applied): ${failure.message}`,
      { cause: failure },
    );
  }
}

/**
 * Validates every resource of `raws`, then applies them in order and returns what each did.
 * Throws InvalidApplyError (nothing applied), ConflictError (a stale resourceVersion found before
 * applying anything) or PartialApplyError (a store failure after some were applied).
 */
export async function applyAll(store: Store, raws: readonly unknown[]): Promise<ApplyResult[]> {
  const resources = validateAll(raws);
  for (const r of resources) {
    const expected = r.metadata.resourceVersion;
    if (expected === undefined) continue;
    const stored = (await store.get(r.kind, r.metadata.namespace, r.metadata.name))?.metadata.resourceVersion;
    if (stored !== expected) throw new ConflictError(describeResource(r), expected, stored ?? 'none');
  }
  const results: ApplyResult[] = [];
  for (const [index, r] of resources.entries()) {
    try {
      const before = await store.get(r.kind, r.metadata.namespace, r.metadata.name);
      const resource = await store.apply(r);
      const action: ApplyAction =
        before === undefined
          ? 'created'
          : before.metadata.resourceVersion === resource.metadata.resourceVersion
            ? 'unchanged'
            : 'configured';
      results.push({ index, action, resource });
    } catch (err) {
      throw new PartialApplyError(err instanceof Error ? err : new Error(String(err)), index, results);
    }
  }
  return results;
}

/** Every resource validated, or an InvalidApplyError with every problem (duplicates included). */
function validateAll(raws: readonly unknown[]): Resource[] {
  const problems: ApplyProblem[] = [];
  const resources: Resource[] = [];
  const firstIndex = new Map<string, number>();
  for (const [index, raw] of raws.entries()) {
    const v = validateResource(raw);
    if (!v.ok) {
      for (const p of v.problems) problems.push({ index, path: formatFieldPath(p.path), message: p.message });
      continue;
    }
    const id = describeResource(v.resource);
    const first = firstIndex.get(id);
    if (first !== undefined) {
      problems.push({ index, path: '', message: `${id} is also resources[${first}]` });
      continue;
    }
    firstIndex.set(id, index);
    resources.push(v.resource);
  }
  if (problems.length > 0) throw new InvalidApplyError(problems);
  return resources;
}
