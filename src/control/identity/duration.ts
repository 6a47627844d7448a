/** Durations in settings: `20s`, `90m`, `24h`, `7d`, or a bare number of seconds. */

const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** A setting parser: the duration in ms, from `minMs` to `maxMs` inclusive. */
export const parseDurationMs =
  (minMs: number, maxMs: number) =>
  (raw: string): number => {
    const m = /^(\d+)(ms|s|m|h|d)?$/.exec(raw.trim());
    const ms = m ? Number(m[1]) * UNIT_MS[m[2] ?? 's'] : Number.NaN;
    if (!Number.isSafeInteger(ms) || ms < minMs || ms > maxMs)
      throw new Error(
        `expected a duration from ${formatDuration(minMs)} to ${formatDuration(maxMs)}, e.g. 20s or 24h`,
      );
    return ms;
  };

/** `86400000` → `24h`, `20000` → `20s`: the largest unit that divides evenly (days from 2 on). */
export function formatDuration(ms: number): string {
  for (const unit of ms >= 2 * UNIT_MS.d ? ['d', 'h', 'm', 's'] : ['h', 'm', 's'])
    if (ms >= UNIT_MS[unit] && ms % UNIT_MS[unit] === 0) return `${ms / UNIT_MS[unit]}${unit}`;
  return `${ms}ms`;
}
