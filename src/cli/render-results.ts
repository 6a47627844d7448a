/**
 * Pure rendering of what `weft apply` and `weft delete` did, and of the problems that stopped
 * them, checked against golden files.
 */
import type { ApplyProblem, ApplyResult } from '../lib/api-client.js';
import { describeResource } from '../store/resource.js';
import type { ResourceProblem } from '../store/store-error.js';

/** One line per resource: `Service shop/books created` (configured, unchanged). */
export function renderApplyResults(results: readonly ApplyResult[]): string {
  return results.map((r) => `${describeResource(r.resource)} ${r.action}\n`).join('');
}

/** `Workload shop/books-0 deleted`. */
export function renderDeleted(r: { kind: string; metadata: { namespace: string; name: string } }): string {
  return `${describeResource(r)} deleted\n`;
}

/** The problems found in the files, one `file:line: field: message` line each, and the verdict. */
export function renderFileProblems(problems: readonly ResourceProblem[]): string {
  const n = problems.length;
  return (
    `error: ${n} problem${n === 1 ? '' : 's'} found, nothing was applied:\n` +
    problems.map((p) => `  ${formatFileProblem(p)}\n`).join('')
  );
}

/** `file:line: field: message`, leaving out what is unknown (a missing file has no line). */
function formatFileProblem(p: ResourceProblem): string {
  const where = p.file === undefined ? '' : p.line === undefined ? `${p.file}: ` : `${p.file}:${p.line}: `;
  return `${where}${p.path === '' ? '' : `${p.path}: `}${p.message}`;
}

/**
 * The problems the API found, each attributed to the file the resource came from (`sources[i]`
 * names resource i as `file` or `file (document N)`).
 */
export function renderApiProblems(problems: readonly ApplyProblem[], sources: readonly string[]): string {
  const n = problems.length;
  return (
    `error: the control plane rejected ${n} problem${n === 1 ? '' : 's'}, nothing was applied:\n` +
    problems
      .map(
        (p) =>
          `  ${sources[p.index] ?? `resources[${p.index}]`}: ${p.path === '' ? '' : `${p.path}: `}${p.message}\n`,
      )
      .join('')
  );
}
