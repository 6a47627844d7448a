/**
 * The proxy's key pair and certificate signing request (docs/identity.md): ECDSA P-256 made in
 * memory for each request, and a PKCS#10 CSR (RFC 2986) whose only subject alternative name is the
 * workload's SPIFFE URI. The key is returned as PEM for the TLS contexts and is never written.
 *
 * The CSR is assembled with the small DER encoder (src/lib/der/der.ts) and signed with
 * node:crypto rather than with a generic X.509 library: one fixed shape needs no more, and the
 * library (@peculiar/x509 with its ASN.1 schema and reflect-metadata) was ~19 MiB of every
 * proxy's resident memory for this one call. The control plane's check (csr-check.ts) reads it.
 */
import { generateKeyPair, type KeyObject, sign } from 'node:crypto';
import { promisify } from 'node:util';
import { bitString, explicit, octetString, oid, seq, set, tlv, uint } from '../../lib/der/der.js';

const generateKeyPairAsync = promisify(generateKeyPair);

/** AlgorithmIdentifier ecdsa-with-SHA256 (RFC 5758: no parameters). */
const ECDSA_WITH_SHA256 = seq(oid('1.2.840.10045.4.3.2'));
/** PKCS#9 extensionRequest: the attribute that carries requested X.509 extensions. */
const EXTENSION_REQUEST = oid('1.2.840.113549.1.9.14');
const SUBJECT_ALT_NAME = oid('2.5.29.17');
/** GeneralName uniformResourceIdentifier: [6] IMPLICIT IA5String. */
const URI_NAME = 0x86;
/** CertificationRequestInfo version 1, encoded 0. */
const VERSION_1 = uint(Buffer.from([0]));
/** The subject is empty: the identity is the URI SAN alone. */
const EMPTY_NAME = seq();

export interface KeyAndCsr {
  /** PKCS#8 PEM of the new private key. */
  readonly keyPem: string;
  /** The CSR, DER, signed by the new key. */
  readonly csrDer: Buffer;
}

/** A fresh ECDSA P-256 key and a CSR for `id` with exactly one URI SAN and an empty subject. */
export async function newKeyAndCsr(id: string): Promise<KeyAndCsr> {
  const { publicKey, privateKey } = await generateKeyPairAsync('ec', { namedCurve: 'P-256' });
  const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  return { keyPem, csrDer: buildCsr(id, publicKey, privateKey) };
}

/** CertificationRequest ::= SEQUENCE { certificationRequestInfo, signatureAlgorithm, signature }. */
function buildCsr(id: string, publicKey: KeyObject, privateKey: KeyObject): Buffer {
  const san = seq(SUBJECT_ALT_NAME, octetString(seq(tlv(URI_NAME, Buffer.from(id, 'ascii')))));
  const extensionRequest = seq(EXTENSION_REQUEST, set(seq(san)));
  const info = seq(
    VERSION_1,
    EMPTY_NAME,
    publicKey.export({ type: 'spki', format: 'der' }),
    // attributes [0] IMPLICIT SET OF Attribute: the same octets as an explicit [0] around them.
    explicit(0, extensionRequest),
  );
  const signature = sign('sha256', info, { key: privateKey, dsaEncoding: 'der' });
  return seq(info, ECDSA_WITH_SHA256, bitString(signature));
}
