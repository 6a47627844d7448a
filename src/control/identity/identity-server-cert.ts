/**
 * The identity service's own TLS material, as a grpc-js CertificateProvider: a leaf for
 * `spiffe://<td>/ns/weft/sa/identity` (key made in memory, never written) issued by the mesh's
 * issuer, and the trust anchors as the CA for client certificates. It re-issues the leaf at 70%
 * of its lifetime and whenever the CA changes; grpc-js then swaps the server's secure context,
 * so new handshakes see the new certificate and open connections carry on.
 */
import type { experimental } from '@grpc/grpc-js';
import type { Logger } from '../../lib/log.js';
import type { CertificateAuthority } from './ca.js';
import { newLeafKey } from './ca-material.js';
import { identityServiceId } from './spiffe-id.js';

type CaCertificateUpdate = experimental.CaCertificateUpdate;
type IdentityCertificateUpdate = experimental.IdentityCertificateUpdate;

/** Fraction of a leaf's lifetime after which it is replaced (the same rule the proxies follow). */
const RENEW_AT = 0.7;

export interface ServerCertificates {
  /** For `experimental.createCertificateProviderServerCredentials` (both roles). */
  readonly provider: experimental.CertificateProvider;
  /** The current leaf's notAfter. */
  notAfter(): Date;
  /** Stops renewing. */
  close(): void;
}

export function newServerCertificates(ca: CertificateAuthority, log: Logger): ServerCertificates {
  const identity = identityServiceId(ca.trustDomain);
  const caListeners = new Set<(u: CaCertificateUpdate | null) => void>();
  const idListeners = new Set<(u: IdentityCertificateUpdate | null) => void>();
  let caUpdate: CaCertificateUpdate;
  let idUpdate: IdentityCertificateUpdate;
  let notAfter = new Date(0);
  let timer: NodeJS.Timeout | undefined;
  let closed = false;

  const refresh = () => {
    if (closed) return;
    const { keyPem, spki } = newLeafKey();
    const leaf = ca.issue(spki, identity);
    notAfter = leaf.notAfter;
    caUpdate = { caCertificate: Buffer.from(ca.bundle().anchorPems.join('')) };
    idUpdate = {
      certificate: Buffer.from(leaf.leafPem + leaf.intermediatePems.join('')),
      privateKey: Buffer.from(keyPem),
    };
    for (const l of caListeners) l(caUpdate);
    for (const l of idListeners) l(idUpdate);
    clearTimeout(timer);
    const lifeMs = leaf.notAfter.getTime() - Date.now();
    timer = setTimeout(refresh, Math.max(1_000, Math.floor(lifeMs * RENEW_AT)));
    timer.unref();
    log.debug('identity server certificate issued', { notAfter: notAfter.toISOString() });
  };
  refresh();
  const unsubscribe = ca.onChange(refresh);

  return {
    provider: {
      // grpc-js registers its own watcher only after adding these listeners: answer asynchronously.
      addCaCertificateListener: (l) => {
        caListeners.add(l);
        setImmediate(() => caListeners.has(l) && l(caUpdate));
      },
      removeCaCertificateListener: (l) => void caListeners.delete(l),
      addIdentityCertificateListener: (l) => {
        idListeners.add(l);
        setImmediate(() => idListeners.has(l) && l(idUpdate));
      },
      removeIdentityCertificateListener: (l) => void idListeners.delete(l),
    },
    notAfter: () => notAfter,
    close: () => {
      closed = true;
      clearTimeout(timer);
      unsubscribe();
    },
  };
}
