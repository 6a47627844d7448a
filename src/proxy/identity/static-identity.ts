/**
 * A LocalIdentity from PEM material given directly, without the control plane: for tests of the
 * TLS layers (with test/support/test-ca.ts) and for rotation tests, which call `update`.
 */
import { IdentityState } from './identity-state.js';
import { splitPemCertificates } from './pem.js';

/** A LocalIdentity whose certificate and anchors the caller replaces by hand. */
export class StaticIdentity extends IdentityState {
  /** Swaps the key and chain (and the anchors when given); listeners are told. */
  update(
    keyPem: string,
    certChainPem: string | readonly string[],
    anchorsPem?: string | readonly string[],
  ): void {
    this.setCertificate(
      { keyPem, chainPem: pemList(certChainPem) },
      anchorsPem === undefined ? undefined : pemList(anchorsPem),
    );
  }
}

/**
 * An identity that is ready at once. `certChainPem` is the leaf first then intermediates (one
 * PEM text or a list); `anchorsPem` the trust anchors. Throws IdentityMaterialError when the key
 * does not match the leaf or the leaf's URI SAN is not `id`.
 */
export function staticIdentity(
  id: string,
  keyPem: string,
  certChainPem: string | readonly string[],
  anchorsPem: string | readonly string[],
): StaticIdentity {
  const identity = new StaticIdentity(id);
  identity.update(keyPem, certChainPem, anchorsPem);
  return identity;
}

function pemList(pem: string | readonly string[]): string[] {
  return (typeof pem === 'string' ? [pem] : pem).flatMap(splitPemCertificates);
}
