/**
 * The identity routes of the control plane's API (src/control/api/api-identity.ts), for
 * `weft run` and `weft identity`. Rejects like ApiClient: ApiUnreachableError or ApiResponseError.
 */
import type { IdentityStatus } from '../control/api/api-identity.js';
import type { CaStatus, CertSummary } from '../control/identity/ca.js';
import type { HostPort } from './addr.js';
import { apiRequest } from './api-client.js';

export type { CertSummary, IdentityStatus };

export interface MintedTokenJson {
  readonly token: string;
  readonly identity: string;
  /** ISO 8601. */
  readonly expiresAt: string;
}

export interface IdentityApiClient {
  status(): Promise<IdentityStatus>;
  /** PEM of every trust anchor. */
  trustBundle(): Promise<string>;
  /** A one-time bootstrap token for `identity`. */
  mintToken(identity: string): Promise<MintedTokenJson>;
  addAnchor(): Promise<CertSummary>;
  reissueIssuer(): Promise<CaStatus['issuer']>;
  removeAnchor(fingerprint: string): Promise<CertSummary>;
}

export function newIdentityApiClient(addr: HostPort): IdentityApiClient {
  const call = (method: string, path: string, body?: unknown) =>
    apiRequest(addr, method, `/api/v1/identity${path}`, body);
  return {
    status: async () => (await call('GET', '')) as IdentityStatus,
    trustBundle: async () => String(await call('GET', '/trust-bundle')),
    mintToken: async (identity) => (await call('POST', '/tokens', { identity })) as MintedTokenJson,
    addAnchor: async () => (await call('POST', '/anchors')) as CertSummary,
    reissueIssuer: async () => (await call('POST', '/issuer')) as CaStatus['issuer'],
    removeAnchor: async (fp) => (await call('DELETE', `/anchors/${encodeURIComponent(fp)}`)) as CertSummary,
  };
}
