/**
 * When to renew (docs/identity.md): at 70% of the leaf's lifetime, ± 5% of it, so that proxies
 * started together do not renew together; and within a few seconds of an issuer change.
 */

/** Fraction of the lifetime at which renewal starts, and the jitter around it (fractions). */
export const RENEW_AT = 0.7;
export const RENEW_JITTER = 0.05;
/** After an issuer generation change, renew uniformly within this window. */
export const GENERATION_RENEW_WINDOW_MS = 3_000;

/** Milliseconds from `nowMs` until the leaf valid over [notBeforeMs, notAfterMs] should be renewed. */
export function renewDelayMs(
  notBeforeMs: number,
  notAfterMs: number,
  nowMs: number,
  random: () => number,
): number {
  const lifetime = Math.max(0, notAfterMs - notBeforeMs);
  const at = notBeforeMs + lifetime * (RENEW_AT + RENEW_JITTER * (2 * random() - 1));
  return Math.max(0, at - nowMs);
}

/** The delay before renewing after the issuer changed: soon, spread over a few seconds. */
export function generationRenewDelayMs(random: () => number): number {
  return random() * GENERATION_RENEW_WINDOW_MS;
}
