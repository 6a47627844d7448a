/** Pieces of the Prometheus text exposition format 0.0.4: names, escaping, sample lines, numbers. */

import { MetricsError } from './metrics-error.js';

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const NEEDS_ESCAPE = /[\\"\n]/;

/** Throws MetricsError `WEFT_ERR_METRIC_NAME` unless `name` is a valid metric name. */
export function checkMetricName(name: string): void {
  if (!METRIC_NAME.test(name)) throw new MetricsError('WEFT_ERR_METRIC_NAME', `invalid metric name ${name}`);
}

/** Throws MetricsError `WEFT_ERR_METRIC_LABEL` for an invalid or reserved (`__*`, `reserved`) name. */
export function checkLabelName(family: string, name: string, reserved?: string): void {
  if (!LABEL_NAME.test(name) || name.startsWith('__') || name === reserved) {
    throw new MetricsError('WEFT_ERR_METRIC_LABEL', `${family}: invalid label name ${JSON.stringify(name)}`);
  }
}

/** `a="x",b="y"` in the labels' key order, values escaped: both the output and a cache key. */
export function labelText(labels: Readonly<Record<string, string>>): string {
  let text = '';
  for (const name in labels) {
    text += `${text === '' ? '' : ','}${name}="${escapeLabelValue(labels[name])}"`;
  }
  return text;
}

/** labelText with the names sorted (`text` when they already are): one key per label set. */
export function canonicalKey(labels: Readonly<Record<string, string>>, text: string): string {
  const names = Object.keys(labels);
  if (names.every((n, i) => i === 0 || names[i - 1] < n)) return text;
  return names
    .sort()
    .map((n) => `${n}="${escapeLabelValue(labels[n])}"`)
    .join(',');
}

/** Escapes backslash, double quote and newline, as label values require. */
export function escapeLabelValue(v: string): string {
  return NEEDS_ESCAPE.test(v) ? v.replace(/[\\"\n]/g, escapeChar) : v;
}

/** Escapes backslash and newline, as HELP text requires. */
export function escapeHelp(help: string): string {
  return help.replace(/[\\\n]/g, escapeChar);
}

function escapeChar(c: string): string {
  return c === '\n' ? '\\n' : `\\${c}`;
}

/** One sample line without its newline: `name{labels} value`, or `name value` without labels. */
export function sample(name: string, labelText: string, v: number): string {
  return labelText === '' ? `${name} ${formatNumber(v)}` : `${name}{${labelText}} ${formatNumber(v)}`;
}

/** Integral values print without a decimal point; infinities as `+Inf`/`-Inf`, NaN as `NaN`. */
export function formatNumber(v: number): string {
  if (v === Number.POSITIVE_INFINITY) return '+Inf';
  if (v === Number.NEGATIVE_INFINITY) return '-Inf';
  return String(v);
}
