/**
 * The identity routes of the public API (docs/identity.md), for `weft run` (tokens, trust bundle)
 * and `weft identity` (status and anchor rotation):
 *
 *   GET    /api/v1/identity                   → trust domain, anchors, issuer, identity address
 *   GET    /api/v1/identity/trust-bundle      → text/plain PEM of every anchor
 *   POST   /api/v1/identity/tokens            { identity } → { token, identity, expiresAt }
 *   POST   /api/v1/identity/anchors           → the new anchor
 *   POST   /api/v1/identity/issuer            → the re-issued issuer
 *   DELETE /api/v1/identity/anchors/{fp}      → the removed anchor
 *
 * The API listens on loopback and has no authentication of its own, so whoever may call it may
 * mint tokens: on the local platform that is the host's users, the same trust as the state dir.
 */
import type { BootstrapTokens } from '../identity/bootstrap-tokens.js';
import type { CaStatus, CertificateAuthority } from '../identity/ca.js';
import { parseWorkloadId } from '../identity/spiffe-id.js';
import { badRequest, MethodNotAllowedError, notFound } from './api-errors.js';

/** What the routes need from the running identity service. */
export interface IdentityApiTarget {
  readonly ca: CertificateAuthority;
  readonly tokens: BootstrapTokens;
  /** `host:port` of the Identity gRPC service. */
  readonly addr: string;
  /** Certify outcomes by result. */
  counts(): Readonly<Record<string, number>>;
}

/** GET /api/v1/identity. */
export interface IdentityStatus extends CaStatus {
  readonly identityAddr: string;
  readonly tokensOutstanding: number;
  readonly certify: Readonly<Record<string, number>>;
}

/** A reply: JSON `body`, or `text` with its content type. */
export interface IdentityReply {
  readonly status: number;
  readonly body?: unknown;
  readonly text?: string;
  readonly contentType?: string;
}

/** Answers `method` on `/api/v1/identity/<rest...>`; throws ApiRequestError or the identity errors. */
export async function identityRoute(
  target: IdentityApiTarget,
  method: string,
  rest: readonly string[],
  readBody: () => Promise<unknown>,
): Promise<IdentityReply> {
  const path = rest.join('/');
  if (path === '') {
    allow(method, ['GET']);
    const status: IdentityStatus = {
      ...target.ca.status(),
      identityAddr: target.addr,
      tokensOutstanding: target.tokens.outstanding(),
      certify: target.counts(),
    };
    return { status: 200, body: status };
  }
  if (path === 'trust-bundle') {
    allow(method, ['GET']);
    return {
      status: 200,
      text: target.ca.bundle().anchorPems.join(''),
      contentType: 'text/plain; charset=utf-8',
    };
  }
  if (path === 'tokens') {
    allow(method, ['POST']);
    const identity = ((await readBody()) as { identity?: unknown } | null)?.identity;
    if (typeof identity !== 'string') throw badRequest('the body must be {"identity": "spiffe://..."}');
    parseWorkloadId(identity, target.ca.trustDomain);
    const minted = target.tokens.mint(identity);
    return { status: 201, body: { ...minted, expiresAt: minted.expiresAt.toISOString() } };
  }
  if (path === 'anchors') {
    allow(method, ['POST']);
    return { status: 201, body: await target.ca.addAnchor() };
  }
  if (path === 'issuer') {
    allow(method, ['POST']);
    return { status: 200, body: await target.ca.reissueIssuer() };
  }
  if (rest.length === 2 && rest[0] === 'anchors') {
    allow(method, ['DELETE']);
    return { status: 200, body: await target.ca.removeAnchor(rest[1]) };
  }
  throw notFound(`path /api/v1/identity/${path}`);
}

function allow(method: string, allowed: readonly string[]): void {
  if (!allowed.includes(method)) throw new MethodNotAllowedError(method, allowed);
}
