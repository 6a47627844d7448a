/** SPIFFE IDs of the form Weft issues: `spiffe://<trust-domain>/ns/<namespace>/sa/<account>`. */
import { BadIdentityError } from './identity-errors.js';

const DNS_LABEL = '[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?';
const WORKLOAD_ID = new RegExp(`^spiffe://([a-z0-9.-]+)/ns/(${DNS_LABEL})/sa/(${DNS_LABEL})$`);
/** Reserved for the control plane's own identities. */
export const CONTROL_PLANE_NAMESPACE = 'weft';
const TRUST_DOMAIN = /^[a-z0-9]([-a-z0-9.]{0,253}[a-z0-9])?$/;

export interface WorkloadId {
  readonly trustDomain: string;
  readonly namespace: string;
  readonly account: string;
}

/** The SPIFFE ID of a service account. */
export function spiffeId(trustDomain: string, namespace: string, account: string): string {
  return `spiffe://${trustDomain}/ns/${namespace}/sa/${account}`;
}

/** The identity the identity service itself presents. */
export function identityServiceId(trustDomain: string): string {
  return spiffeId(trustDomain, CONTROL_PLANE_NAMESPACE, 'identity');
}

/** Parses `identity` and checks it is in `trustDomain`; throws BadIdentityError. */
export function parseWorkloadId(identity: string, trustDomain: string): WorkloadId {
  const m = WORKLOAD_ID.exec(identity);
  if (!m)
    throw new BadIdentityError(identity, 'expected spiffe://<trust-domain>/ns/<namespace>/sa/<account>');
  if (m[1] !== trustDomain) throw new BadIdentityError(identity, `not in the trust domain ${trustDomain}`);
  // The control plane's own identities (the identity service, which proxies trust to hand them
  // trust anchors) live in this namespace: no token or workload may ever obtain one.
  if (m[2] === CONTROL_PLANE_NAMESPACE)
    throw new BadIdentityError(
      identity,
      `namespace ${CONTROL_PLANE_NAMESPACE} is reserved for the control plane`,
    );
  return { trustDomain: m[1], namespace: m[2], account: m[4] };
}

/** Setting parser for a trust domain (lower-case DNS name). */
export function parseTrustDomain(raw: string): string {
  if (!TRUST_DOMAIN.test(raw)) throw new Error('expected a lower-case DNS name, e.g. weft.local');
  return raw;
}
