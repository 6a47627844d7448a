/**
 * Signs workload leaf certificates fast: the TBSCertificate is assembled with the small DER
 * encoder and signed with node:crypto (tens of microseconds), instead of a generic X.509 library
 * on WebCrypto (milliseconds). The leaf carries exactly what docs/identity.md promises: an empty
 * subject, one critical URI SAN, serverAuth + clientAuth, digitalSignature, not a CA.
 */
import { createHash, type KeyObject, randomBytes, sign } from 'node:crypto';
import { bitString, bool, explicit, octetString, oid, seq, time, tlv, uint } from '../../lib/der/der.js';

const ECDSA_WITH_SHA256 = seq(oid('1.2.840.10045.4.3.2'));
const V3 = explicit(0, uint(Buffer.from([2])));

/** The issuer as the signer needs it, prepared once per issuer. */
export interface LeafSigner {
  /** The issuer's encoded subject Name. */
  readonly issuerName: Buffer;
  /** The issuer's subjectKeyIdentifier, when it has one (becomes the leaf's authorityKeyIdentifier). */
  readonly issuerKeyId?: Buffer;
  /** The issuer's private key (ECDSA P-256). */
  readonly key: KeyObject;
}

export interface LeafRequest {
  /** The subject's public key, an encoded SubjectPublicKeyInfo. */
  readonly spki: Buffer;
  /** The URI SAN, e.g. spiffe://weft.local/ns/default/sa/books. */
  readonly uri: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

/** The DER of a new leaf certificate. */
export function signLeaf(signer: LeafSigner, req: LeafRequest): Buffer {
  const extensions = [
    extension('2.5.29.19', true, seq()), // basicConstraints: not a CA
    extension('2.5.29.15', true, tlv(0x03, Buffer.from([0x07, 0x80]))), // keyUsage: digitalSignature
    extension('2.5.29.37', false, seq(oid('1.3.6.1.5.5.7.3.1'), oid('1.3.6.1.5.5.7.3.2'))),
    // The subject is empty, so the SAN is critical (RFC 5280 §4.2.1.6); [6] is uniformResourceIdentifier.
    extension('2.5.29.17', true, seq(tlv(0x86, Buffer.from(req.uri, 'ascii')))),
    extension('2.5.29.14', false, octetString(keyId(req.spki))),
  ];
  if (signer.issuerKeyId) extensions.push(extension('2.5.29.35', false, seq(tlv(0x80, signer.issuerKeyId))));
  const tbs = seq(
    V3,
    uint(serialNumber()),
    ECDSA_WITH_SHA256,
    signer.issuerName,
    seq(time(req.notBefore), time(req.notAfter)),
    seq(), // empty subject: the identity is the SAN
    req.spki,
    explicit(3, seq(...extensions)),
  );
  const signature = sign('sha256', tbs, { key: signer.key, dsaEncoding: 'der' });
  return seq(tbs, ECDSA_WITH_SHA256, bitString(signature));
}

/** `-----BEGIN CERTIFICATE-----` PEM of a DER certificate. */
export function certificatePem(der: Buffer): string {
  const b64 = der.toString('base64').replace(/.{64}/g, '$&\n');
  return `-----BEGIN CERTIFICATE-----\n${b64}${b64.endsWith('\n') ? '' : '\n'}-----END CERTIFICATE-----\n`;
}

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return critical ? seq(oid(id), bool(true), octetString(value)) : seq(oid(id), octetString(value));
}

const SERIAL_BYTES = 16;
/** Random bytes for 256 serial numbers at a time (one call into the CSPRNG instead of 256). */
let serialPool = Buffer.alloc(0);

/** 16 random bytes, positive and of fixed length (RFC 5280: at most 20 octets, unpredictable). */
function serialNumber(): Buffer {
  if (serialPool.length < SERIAL_BYTES) serialPool = randomBytes(SERIAL_BYTES * 256);
  const b = Buffer.from(serialPool.subarray(0, SERIAL_BYTES));
  serialPool = serialPool.subarray(SERIAL_BYTES);
  b[0] = (b[0] & 0x7f) | 0x40;
  return b;
}

/** RFC 5280 method 1 style key identifier: SHA-1 of the whole SubjectPublicKeyInfo (any stable hash will do). */
function keyId(spki: Buffer): Buffer {
  return createHash('sha1').update(spki).digest();
}
