/** PEM helpers for the proxy's identity: split bundles, fingerprint certificates. */
import { createHash, X509Certificate } from 'node:crypto';

const CERT_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Every certificate block of a PEM text, each normalised to end with a newline. */
export function splitPemCertificates(text: string): string[] {
  return (text.match(CERT_BLOCK) ?? []).map((b) => `${b}\n`);
}

/** SHA-256 of a certificate's DER, lower-case hex without colons. */
export function certFingerprint(cert: X509Certificate | string): string {
  const x = typeof cert === 'string' ? new X509Certificate(cert) : cert;
  return createHash('sha256').update(x.raw).digest('hex');
}
