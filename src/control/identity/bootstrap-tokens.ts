/**
 * One-time bootstrap tokens, the local platform's TokenValidator: `weft run` mints one (through
 * the API) for the workload it registers, hands it to its proxy in a private file, and the proxy
 * spends it on its first Certify. Tokens are 32 random bytes; only their SHA-256 is held, in
 * memory (a control-plane restart voids unused tokens, which only matters in the minutes between
 * `weft run` starting and its proxy's first Certify). Each is bound to one identity, expires, and
 * is spent by the first validation that finds it, whether or not the identity matched. A token
 * spent by a successful validation stays bound to the key that spent it until it expires, so the
 * same proxy can retry a Certify whose response it never got (TokenValidator.validate).
 */
import { createHash, randomBytes } from 'node:crypto';
import { IdentityDeniedError, TooManyTokensError, UnauthenticatedError } from './identity-errors.js';
import type { TokenValidator } from './token-validator.js';

export const BOOTSTRAP_TOKEN_TTL_MS = 10 * 60_000;
/** Unused tokens held at most; minting beyond it fails (after dropping expired ones). */
export const MAX_OUTSTANDING_TOKENS = 100_000;

export interface MintedToken {
  readonly token: string;
  readonly identity: string;
  readonly expiresAt: Date;
}

export interface BootstrapTokens extends TokenValidator {
  /** A new token for `identity` (already checked by the caller). Throws TooManyTokensError. */
  mint(identity: string): MintedToken;
  /** Unused, unexpired tokens held. */
  outstanding(): number;
}

export interface BootstrapTokenOptions {
  readonly ttlMs?: number;
  readonly maxOutstanding?: number;
  /** The clock, for tests of expiry. */
  readonly now?: () => number;
}

export function newBootstrapTokens(options: BootstrapTokenOptions = {}): BootstrapTokens {
  const ttlMs = options.ttlMs ?? BOOTSTRAP_TOKEN_TTL_MS;
  const max = options.maxOutstanding ?? MAX_OUTSTANDING_TOKENS;
  const now = options.now ?? Date.now;
  const byHash = new Map<string, { identity: string; expiresAtMs: number }>();
  /** Tokens spent by a successful validation, until they expire: who spent them, with which key. */
  const spent = new Map<string, { identity: string; keyId: string; expiresAtMs: number }>();
  const hash = (token: string) => createHash('sha256').update(token).digest('hex');
  const sweep = () => {
    const t = now();
    for (const [h, e] of byHash) if (e.expiresAtMs <= t) byHash.delete(h);
    for (const [h, e] of spent) if (e.expiresAtMs <= t) spent.delete(h);
  };
  /** A spent token presented again: only by the identity and key that spent it, before expiry. */
  const revalidate = (h: string, identity: string, keyId: string) => {
    const e = spent.get(h);
    if (!e || e.identity !== identity || e.keyId !== keyId || e.expiresAtMs <= now())
      throw new UnauthenticatedError('unknown or already used token');
  };
  return {
    mint(identity) {
      if (byHash.size >= max) sweep();
      if (byHash.size >= max) throw new TooManyTokensError(max);
      const token = randomBytes(32).toString('base64url');
      const expiresAtMs = now() + ttlMs;
      byHash.set(hash(token), { identity, expiresAtMs });
      return { token, identity, expiresAt: new Date(expiresAtMs) };
    },
    async validate(token, identity, keyId) {
      const h = hash(token);
      const entry = byHash.get(h);
      if (!entry) return revalidate(h, identity, keyId);
      byHash.delete(h);
      if (entry.expiresAtMs <= now()) throw new UnauthenticatedError('expired token');
      if (entry.identity !== identity) throw new IdentityDeniedError(identity, entry.identity);
      if (spent.size >= max) sweep();
      // Bounded like the unused tokens: past the bound a retry needs a new token, nothing worse.
      if (spent.size < max) spent.set(h, { identity, keyId, expiresAtMs: entry.expiresAtMs });
    },
    outstanding() {
      sweep();
      return byHash.size;
    },
  };
}
