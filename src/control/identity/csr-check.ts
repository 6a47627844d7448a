/**
 * Checks a workload's PKCS#10 certificate signing request (RFC 2986) before anything is signed:
 * it parses, its key is ECDSA P-256, it is signed by that key (proof of possession), and its only
 * subject alternative name is one URI, the identity asked for. Other requested extensions are
 * ignored: the leaf's extensions are fixed by the CA (leaf-signer.ts), never copied from here.
 *
 * Parsed with the strict little DER reader (src/lib/der/der.ts) rather than a generic ASN.1
 * library, which cost ~2 ms per request, most of an issuance. The reader bounds-checks every
 * length and accepts only definite, short-form tags; anything unexpected is a BadCsrError.
 */
import { createPublicKey, type KeyObject, verify } from 'node:crypto';
import { children, type Element, oid, seq } from '../../lib/der/der.js';
import { BadCsrError } from './identity-errors.js';

const ECDSA_WITH_SHA256 = seq(oid('1.2.840.10045.4.3.2'));
/** SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING (0 unused bits, then 0x04 = uncompressed) }. */
const P256_SPKI_HEADER = Buffer.from('3059301306072a8648ce3d020106082a8648ce3d03010703420004', 'hex');
const EXTENSION_REQUEST = oid('1.2.840.113549.1.9.14');
const SUBJECT_ALT_NAME = oid('2.5.29.17');
const SEQUENCE = 0x30;
const SET = 0x31;
const URI_NAME = 0x86; // [6] IA5String uniformResourceIdentifier
/** A CSR is a few hundred bytes; anything much larger is not one of ours. */
export const MAX_CSR_BYTES = 8 * 1024;

export interface CheckedCsr {
  /** The requester's public key, an encoded SubjectPublicKeyInfo. */
  readonly spki: Buffer;
  /** The one URI SAN, equal to the identity asked for. */
  readonly uri: string;
}

/** Checks `der` for `identity`; throws BadCsrError saying what is wrong. */
export function checkCsr(der: Uint8Array, identity: string): CheckedCsr {
  if (der.length === 0) throw new BadCsrError('empty');
  if (der.length > MAX_CSR_BYTES) throw new BadCsrError(`larger than ${MAX_CSR_BYTES} bytes`);
  const { info, algorithm, signature, spki, attributes } = parse(Buffer.from(der));
  const key = p256Key(spki);
  if (!algorithm.der.equals(ECDSA_WITH_SHA256)) throw new BadCsrError('not signed with ecdsa-with-SHA256');
  // A BIT STRING's first octet counts unused bits: 0 for a DER signature.
  if (signature.value[0] !== 0) throw new BadCsrError('malformed signature');
  const signed = verify('sha256', info.der, { key, dsaEncoding: 'der' }, signature.value.subarray(1));
  if (!signed) throw new BadCsrError('the signature does not verify with its key');
  const uris = requestedSans(attributes);
  if (uris.length !== 1 || uris[0].tag !== URI_NAME)
    throw new BadCsrError('the subjectAltName must be exactly one URI');
  const uri = uris[0].value.toString('ascii');
  if (uri !== identity)
    throw new BadCsrError(`the URI SAN ${uri} is not the identity asked for (${identity})`);
  return { spki, uri };
}

/**
 * The public key of a P-256 SubjectPublicKeyInfo, which is always the same 26-byte header and an
 * uncompressed point. Imported as JWK: OpenSSL 3's DER decoder costs twice as much, and the
 * import still checks that the point is on the curve.
 */
function p256Key(spki: Buffer): KeyObject {
  if (
    spki.length !== P256_SPKI_HEADER.length + 64 ||
    !spki.subarray(0, P256_SPKI_HEADER.length).equals(P256_SPKI_HEADER)
  )
    throw new BadCsrError('the key is not ECDSA P-256 (uncompressed)');
  const point = spki.subarray(P256_SPKI_HEADER.length); // x and y, 32 bytes each
  try {
    return createPublicKey({
      key: {
        kty: 'EC',
        crv: 'P-256',
        x: point.subarray(0, 32).toString('base64url'),
        y: point.subarray(32).toString('base64url'),
      },
      format: 'jwk',
    });
  } catch (err) {
    throw new BadCsrError('the public key is not a point on P-256', err);
  }
}

/** The parts of a CertificationRequest; BadCsrError when its shape is wrong. */
function parse(der: Buffer) {
  try {
    const top = children(der);
    if (top.length !== 1 || top[0].tag !== SEQUENCE) throw new Error('not one SEQUENCE');
    const [info, algorithm, signature, ...extra] = children(top[0].value);
    if (
      !info ||
      info.tag !== SEQUENCE ||
      algorithm?.tag !== SEQUENCE ||
      signature?.tag !== 0x03 ||
      extra.length > 0
    )
      throw new Error('not a CertificationRequest');
    // CertificationRequestInfo: version, subject, subjectPKInfo, [0] attributes.
    const [version, subject, spki, attributes, ...rest] = children(info.value);
    if (version?.tag !== 0x02 || subject?.tag !== SEQUENCE || spki?.tag !== SEQUENCE || rest.length > 0)
      throw new Error('not a CertificationRequestInfo');
    if (attributes !== undefined && attributes.tag !== 0xa0) throw new Error('bad attributes');
    return { info, algorithm, signature, spki: Buffer.from(spki.der), attributes };
  } catch (err) {
    throw new BadCsrError(`not a DER PKCS#10 request (${(err as Error).message})`, err);
  }
}

/** The GeneralNames of the one subjectAltName in the extension request (none when absent). */
function requestedSans(attributes: Element | undefined): Element[] {
  const sans: Element[] = [];
  try {
    for (const attr of attributes ? children(attributes.value) : []) {
      const [type, values] = children(attr.value);
      if (!type.der.equals(EXTENSION_REQUEST) || values?.tag !== SET) continue;
      for (const extensions of children(values.value))
        for (const ext of children(extensions.value)) {
          const parts = children(ext.value);
          if (!parts[0].der.equals(SUBJECT_ALT_NAME)) continue;
          const octets = parts[parts.length - 1];
          if (octets.tag !== 0x04) throw new Error('extension value is not an OCTET STRING');
          const [names, ...trailing] = children(octets.value);
          if (names?.tag !== SEQUENCE || trailing.length > 0) throw new Error('bad subjectAltName');
          sans.push(...children(names.value));
          if (sans.length === 0) throw new Error('empty subjectAltName');
        }
    }
  } catch (err) {
    throw new BadCsrError(`malformed extension request (${(err as Error).message})`, err);
  }
  return sans;
}
