/**
 * How Certify decides that the bearer of a token may have an identity. One small interface so
 * the platform decides what a token is: one-time bootstrap tokens on the local platform
 * (bootstrap-tokens.ts), a projected ServiceAccount token checked by a Kubernetes TokenReview
 * later, which would map the reviewed `system:serviceaccount:<ns>:<sa>` to the SPIFFE ID and
 * compare.
 */

export interface TokenValidator {
  /**
   * Resolves when `token` entitles its bearer to `identity`. Rejects with UnauthenticatedError
   * when the token is unknown, used, expired or otherwise invalid, and with IdentityDeniedError
   * when it is valid for another identity. May consume the token (one-time tokens are spent by
   * the first call that finds them, whatever its outcome), so call it once per request, after
   * everything that does not need the token has been checked.
   *
   * `keyId` names the key of the request's CSR (its signature was checked: the caller holds the
   * private key). A validator that spends tokens accepts a spent token again, until it would have
   * expired, from the same identity and key: a proxy whose Certify response was lost (the call
   * timed out after the server spent the token) retries with the same key and still gets its
   * certificate, and the token is worth nothing to anyone without that key.
   */
  validate(token: string, identity: string, keyId: string): Promise<void>;
}
