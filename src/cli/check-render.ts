/**
 * The report of `weft check`: one line per check, grouped, each starting with a mark that greps
 * well (`[ok]`, `[warn]`, `[fail]`) and naming what it checked, then a summary line. Colour only
 * when asked (a TTY without NO_COLOR); the marks carry the meaning either way.
 */
import type { CheckResult, CheckStatus } from './check-evaluate.js';

const MARK: Readonly<Record<CheckStatus, string>> = { ok: '[ok]  ', warn: '[warn]', fail: '[fail]' };
const COLOUR: Readonly<Record<CheckStatus, string>> = { ok: '\x1b[32m', warn: '\x1b[33m', fail: '\x1b[31m' };
const RESET = '\x1b[0m';

export interface CheckSummary {
  readonly ok: number;
  readonly warn: number;
  readonly fail: number;
}

export function summarize(results: readonly CheckResult[]): CheckSummary {
  const count = (s: CheckStatus) => results.filter((r) => r.status === s).length;
  return { ok: count('ok'), warn: count('warn'), fail: count('fail') };
}

/** The text report; groups keep the order in which their first result appears. */
export function renderCheck(results: readonly CheckResult[], colour = false): string {
  const lines: string[] = [];
  const groups = [...new Set(results.map((r) => r.group))];
  for (const g of groups) {
    lines.push(g);
    for (const r of results.filter((x) => x.group === g)) {
      const mark = colour ? `${COLOUR[r.status]}${MARK[r.status]}${RESET}` : MARK[r.status];
      lines.push(`  ${mark} ${r.subject}: ${r.message}`);
    }
  }
  const s = summarize(results);
  const verdict = s.fail > 0 ? 'FAILED' : s.warn > 0 ? 'passed with warnings' : 'passed';
  lines.push(
    '',
    `summary: ${s.ok} ok, ${s.warn} warning${s.warn === 1 ? '' : 's'}, ${s.fail} failed: ${verdict}`,
  );
  return `${lines.join('\n')}\n`;
}

/** The JSON report (`-o json`): every check and the summary. */
export function renderCheckJson(results: readonly CheckResult[]): string {
  return `${JSON.stringify({ checks: results, summary: summarize(results) }, null, 2)}\n`;
}
