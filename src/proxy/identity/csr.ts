/**
 * The proxy's key pair and certificate signing request (docs/identity.md): ECDSA P-256 made in
 * memory for each request, and a PKCS#10 CSR whose only subject alternative name is the
 * workload's SPIFFE URI. The key is returned as PEM for the TLS contexts and is never written.
 */
import { KeyObject, webcrypto } from 'node:crypto';
import { x509 } from './x509-setup.js';

const EC_P256 = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNING = { name: 'ECDSA', hash: 'SHA-256' } as const;

export interface KeyAndCsr {
  /** PKCS#8 PEM of the new private key. */
  readonly keyPem: string;
  /** The CSR, DER, signed by the new key. */
  readonly csrDer: Buffer;
}

/** A fresh ECDSA P-256 key and a CSR for `id` with exactly one URI SAN and an empty subject. */
export async function newKeyAndCsr(id: string): Promise<KeyAndCsr> {
  const keys = (await webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify'])) as CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    keys,
    signingAlgorithm: SIGNING,
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: id }])],
  });
  const keyPem = KeyObject.from(keys.privateKey as webcrypto.CryptoKey).export({
    type: 'pkcs8',
    format: 'pem',
  }) as string;
  return { keyPem, csrDer: Buffer.from(csr.rawData) };
}
