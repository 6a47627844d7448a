/**
 * The CA's certificates and keys: making a trust anchor (self-signed root) and an issuer
 * (intermediate) with @peculiar/x509 (rare operations, a few ms each), and reading PEM back into
 * the forms the CA works with. Keys are ECDSA P-256, held as PKCS#8 PEM and node KeyObjects.
 */
import 'reflect-metadata';
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  webcrypto,
  X509Certificate,
} from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { certificateSubject } from '../../lib/der/der.js';
import type { LeafSigner } from './leaf-signer.js';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY_MS = 86_400_000;

/** Trust anchor lifetime: long enough that rotation is a yearly chore, short enough to be practised. */
export const ANCHOR_LIFETIME_MS = 365 * DAY_MS;
/** Issuer lifetime; the CA re-issues it when less than ISSUER_RENEW_BEFORE_MS remains. */
export const ISSUER_LIFETIME_MS = 90 * DAY_MS;
export const ISSUER_RENEW_BEFORE_MS = 30 * DAY_MS;

/** A certificate with what the CA reads from it, parsed once. */
export interface CertInfo {
  readonly pem: string;
  readonly der: Buffer;
  readonly x509: X509Certificate;
  /** SHA-256 of the DER, lower-case hex without separators. */
  readonly fingerprint: string;
  readonly subject: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

/** A certificate and its private key. */
export interface KeyedCert extends CertInfo {
  readonly keyPem: string;
  readonly key: KeyObject;
}

/** Parses one PEM certificate. Throws on anything else. */
export function certInfo(pem: string): CertInfo {
  const cert = new X509Certificate(pem);
  return {
    pem: cert.toString(),
    der: cert.raw,
    x509: cert,
    fingerprint: cert.fingerprint256.replaceAll(':', '').toLowerCase(),
    subject: cert.subject.replaceAll('\n', ', '),
    notBefore: new Date(cert.validFrom),
    notAfter: new Date(cert.validTo),
  };
}

/** Every certificate of a PEM bundle, in order. */
export function splitPemBundle(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

/** A certificate and key read from PEM; throws when the key is not P-256 or does not match. */
export function keyedCert(certPem: string, keyPem: string): KeyedCert {
  const info = certInfo(certPem);
  const key = createPrivateKey(keyPem);
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1')
    throw new Error('the key is not ECDSA P-256');
  if (!info.x509.checkPrivateKey(key)) throw new Error('the key does not belong to the certificate');
  return { ...info, keyPem: key.export({ type: 'pkcs8', format: 'pem' }) as string, key };
}

/** A new self-signed trust anchor for `trustDomain`, valid from (about) now. */
export async function newAnchor(trustDomain: string, now = new Date()): Promise<KeyedCert> {
  const { cryptoKeys, keyPem, key } = await newKeyPair();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerialHex(),
    name: `CN=${trustDomain} trust anchor ${now.toISOString()}, O=Weft`,
    notBefore: new Date(now.getTime() - 60_000),
    notAfter: new Date(now.getTime() + ANCHOR_LIFETIME_MS),
    keys: cryptoKeys,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, 1, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(cryptoKeys.publicKey),
    ],
  });
  return { ...certInfo(cert.toString('pem')), keyPem, key };
}

/** A new issuer signed by `anchor`, valid for ISSUER_LIFETIME_MS but never past the anchor. */
export async function newIssuer(
  anchor: KeyedCert,
  trustDomain: string,
  generation: number,
  now = new Date(),
): Promise<KeyedCert> {
  const { cryptoKeys, keyPem, key } = await newKeyPair();
  const anchorKey = await importPrivate(anchor.keyPem);
  const anchorCert = new x509.X509Certificate(anchor.pem);
  const notAfter = Math.min(now.getTime() + ISSUER_LIFETIME_MS, anchor.notAfter.getTime());
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerialHex(),
    subject: `CN=${trustDomain} issuer ${generation}, O=Weft`,
    issuer: anchorCert.subject,
    notBefore: new Date(now.getTime() - 60_000),
    notAfter: new Date(notAfter),
    publicKey: cryptoKeys.publicKey,
    signingKey: anchorKey,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(cryptoKeys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(anchorCert),
    ],
  });
  return { ...certInfo(cert.toString('pem')), keyPem, key };
}

/** What the leaf signer needs from an issuer. */
export function leafSignerOf(issuer: KeyedCert): LeafSigner {
  const ski = new x509.X509Certificate(issuer.pem).getExtension(x509.SubjectKeyIdentifierExtension);
  return {
    issuerName: certificateSubject(issuer.der),
    issuerKeyId: ski ? Buffer.from(ski.keyId, 'hex') : undefined,
    key: issuer.key,
  };
}

/** True when `cert` is signed by `by` (names match and the signature verifies). */
export function isSignedBy(cert: CertInfo, by: CertInfo): boolean {
  return cert.x509.checkIssued(by.x509) && cert.x509.verify(by.x509.publicKey);
}

/** A fresh P-256 key pair in memory (used for the identity server's own leaf too). */
export function newLeafKey(): { key: KeyObject; keyPem: string; spki: Buffer } {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return {
    key: privateKey,
    keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    spki: createPublicKey(privateKey).export({ type: 'spki', format: 'der' }),
  };
}

async function newKeyPair(): Promise<{ cryptoKeys: CryptoKeyPair; keyPem: string; key: KeyObject }> {
  const { key, keyPem } = newLeafKey();
  const cryptoKeys = {
    privateKey: await importPrivate(keyPem),
    publicKey: await webcrypto.subtle.importKey(
      'spki',
      createPublicKey(key).export({ type: 'spki', format: 'der' }),
      ALG,
      true,
      ['verify'],
    ),
  } as CryptoKeyPair;
  return { cryptoKeys, keyPem, key };
}

function importPrivate(keyPem: string): Promise<CryptoKey> {
  const der = createPrivateKey(keyPem).export({ type: 'pkcs8', format: 'der' });
  return webcrypto.subtle.importKey('pkcs8', der, ALG, false, ['sign']) as Promise<CryptoKey>;
}

function randomSerialHex(): string {
  const b = webcrypto.getRandomValues(new Uint8Array(16));
  b[0] = (b[0] & 0x7f) | 0x40;
  return Buffer.from(b).toString('hex');
}
