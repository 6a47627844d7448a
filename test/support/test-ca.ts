/**
 * A certificate authority for tests of identity and mTLS: ECDSA P-256 root (trust anchor) →
 * intermediate (issuer) → leaves for any SPIFFE ID, made with @peculiar/x509 in memory. Other
 * CAs, self-signed leaves, expired or misnamed leaves make the negative cases:
 *
 *   const ca = await newTestCa();
 *   const books = await ca.issue('spiffe://weft.local/ns/default/sa/books');
 *   const identity = staticIdentity(books.id, books.keyPem, books.chainPem, ca.anchorsPem);
 *   const stranger = await (await newTestCa('Other')).issue(books.id); // another CA
 *   const selfie = await selfSignedLeaf(books.id);
 */
import { KeyObject, webcrypto } from 'node:crypto';
import { type StaticIdentity, staticIdentity } from '../../src/proxy/identity/static-identity.js';
import { x509 } from '../../src/proxy/identity/x509-setup.js';

const EC_P256 = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNING = { name: 'ECDSA', hash: 'SHA-256' } as const;
const HOUR_MS = 3_600_000;

/** A certificate and its key pair. */
export interface TestCert {
  readonly cert: x509.X509Certificate;
  readonly keys: CryptoKeyPair;
  readonly certPem: string;
  readonly keyPem: string;
}

/** A leaf ready for a TLS context or `staticIdentity`. */
export interface TestLeaf extends TestCert {
  /** The first URI SAN (the SPIFFE ID), or '' when none. */
  readonly id: string;
  /** Leaf first, then the intermediate (just the leaf when self-signed). */
  readonly chainPem: readonly string[];
  /** The anchors a verifier of this leaf should trust (its CA's root, or itself). */
  readonly anchorsPem: readonly string[];
}

export interface LeafOptions {
  /** Default now − 1 min. */
  readonly notBefore?: Date;
  /** Default notBefore + 1 h. */
  readonly notAfter?: Date;
  /** URI SANs; default `[id]`. Give several (or none) to make a malformed leaf. */
  readonly uris?: readonly string[];
  /** DNS SANs; default none. */
  readonly dnsNames?: readonly string[];
}

export interface TestCa {
  readonly root: TestCert;
  readonly intermediate: TestCert;
  /** The root's PEM, as a one-element trust bundle. */
  readonly anchorsPem: readonly string[];
  /** A leaf for `id` signed by the intermediate, usable for TLS server and client auth. */
  issue(id: string, opts?: LeafOptions): Promise<TestLeaf>;
  /**
   * Signs a PKCS#10 CSR (DER) with the intermediate, as the identity service would: the leaf
   * names the CSR's URI SANs (unless `opts.uris` says otherwise) and carries its public key.
   */
  signCsr(csrDer: Uint8Array, opts?: LeafOptions): Promise<string>;
  /** A ready StaticIdentity for `id` from this CA. */
  identity(id: string, opts?: LeafOptions): Promise<StaticIdentity>;
  /** A new intermediate under the same root (issuer rotation); `issue` then uses it. */
  rotateIntermediate(): Promise<TestCert>;
}

/** When the root and the (first) intermediate expire; default in 24 h. */
export interface CaValidity {
  readonly rootNotAfter?: Date;
  readonly issuerNotAfter?: Date;
}

/** A fresh root and intermediate; `name` tells CAs apart in subjects ("Other" for a foreign CA). */
export async function newTestCa(name = 'Weft Test', expiry: CaValidity = {}): Promise<TestCa> {
  const root = await newRoot(`CN=${name} Root`, expiry.rootNotAfter);
  let intermediate = await newIntermediate(root, `CN=${name} Issuer`, expiry.issuerNotAfter);
  const ca: TestCa = {
    root,
    get intermediate() {
      return intermediate;
    },
    anchorsPem: [root.certPem],
    issue: async (id, opts) => {
      const leaf = await signLeaf(intermediate, id, opts);
      return {
        ...leaf,
        id: firstUri(id, opts),
        chainPem: [leaf.certPem, intermediate.certPem],
        anchorsPem: [root.certPem],
      };
    },
    signCsr: async (csrDer, opts = {}) => {
      const csr = new x509.Pkcs10CertificateRequest(new Uint8Array(csrDer));
      const raw = csr.getExtension('2.5.29.17');
      const names = raw ? new x509.SubjectAlternativeNameExtension(raw.rawData).names.toJSON() : [];
      const uris = names.filter((n) => n.type === 'url').map((n) => n.value);
      const { notBefore, notAfter } = validity(opts);
      const cert = await x509.X509CertificateGenerator.create({
        subject: '',
        issuer: intermediate.cert.subject,
        publicKey: await csr.publicKey.export(),
        signingKey: intermediate.keys.privateKey,
        notBefore,
        notAfter,
        signingAlgorithm: SIGNING,
        extensions: [
          ...leafExtensions(uris[0] ?? '', { uris, ...opts }),
          await x509.AuthorityKeyIdentifierExtension.create(intermediate.keys.publicKey),
        ],
      });
      return `${cert.toString('pem')}\n`;
    },
    identity: async (id, opts) => {
      const leaf = await ca.issue(id, opts);
      return staticIdentity(id, leaf.keyPem, leaf.chainPem, leaf.anchorsPem);
    },
    rotateIntermediate: async () => {
      intermediate = await newIntermediate(root, `CN=${name} Issuer ${Date.now()}`);
      return intermediate;
    },
  };
  return ca;
}

/** A leaf for `id` that signs itself (no CA): a peer any mesh verifier must refuse. */
export async function selfSignedLeaf(id: string, opts: LeafOptions = {}): Promise<TestLeaf> {
  const keys = await newKeys();
  const { notBefore, notAfter } = validity(opts);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    name: 'CN=self-signed',
    keys,
    notBefore,
    notAfter,
    signingAlgorithm: SIGNING,
    extensions: leafExtensions(id, opts),
  });
  const tc = await toTestCert(cert, keys);
  return { ...tc, id: firstUri(id, opts), chainPem: [tc.certPem], anchorsPem: [tc.certPem] };
}

async function newRoot(subject: string, notAfter = new Date(Date.now() + 24 * HOUR_MS)): Promise<TestCert> {
  const keys = await newKeys();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    name: subject,
    keys,
    notBefore: new Date(Date.now() - 60_000),
    notAfter,
    signingAlgorithm: SIGNING,
    extensions: [
      new x509.BasicConstraintsExtension(true, 1, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return toTestCert(cert, keys);
}

async function newIntermediate(
  root: TestCert,
  subject: string,
  notAfter = new Date(Date.now() + 24 * HOUR_MS),
): Promise<TestCert> {
  const keys = await newKeys();
  const cert = await x509.X509CertificateGenerator.create({
    subject,
    issuer: root.cert.subject,
    publicKey: keys.publicKey,
    signingKey: root.keys.privateKey,
    notBefore: new Date(Date.now() - 60_000),
    notAfter,
    signingAlgorithm: SIGNING,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(root.keys.publicKey),
    ],
  });
  return toTestCert(cert, keys);
}

async function signLeaf(issuer: TestCert, id: string, opts: LeafOptions = {}): Promise<TestCert> {
  const keys = await newKeys();
  const { notBefore, notAfter } = validity(opts);
  const cert = await x509.X509CertificateGenerator.create({
    subject: '',
    issuer: issuer.cert.subject,
    publicKey: keys.publicKey,
    signingKey: issuer.keys.privateKey,
    notBefore,
    notAfter,
    signingAlgorithm: SIGNING,
    extensions: [
      ...leafExtensions(id, opts),
      await x509.AuthorityKeyIdentifierExtension.create(issuer.keys.publicKey),
    ],
  });
  return toTestCert(cert, keys);
}

function leafExtensions(id: string, opts: LeafOptions): x509.Extension[] {
  const names = [
    ...(opts.uris ?? [id]).map((value) => ({ type: 'url' as const, value })),
    ...(opts.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value })),
  ];
  return [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
    // An empty subject makes the SAN critical (RFC 5280 §4.2.1.6).
    new x509.SubjectAlternativeNameExtension(names, true),
  ];
}

function validity(opts: LeafOptions): { notBefore: Date; notAfter: Date } {
  const notBefore = opts.notBefore ?? new Date(Date.now() - 60_000);
  return { notBefore, notAfter: opts.notAfter ?? new Date(notBefore.getTime() + HOUR_MS) };
}

function firstUri(id: string, opts: LeafOptions = {}): string {
  return (opts.uris ?? [id])[0] ?? '';
}

async function newKeys(): Promise<CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify'])) as CryptoKeyPair;
}

async function toTestCert(cert: x509.X509Certificate, keys: CryptoKeyPair): Promise<TestCert> {
  const keyPem = KeyObject.from(keys.privateKey as webcrypto.CryptoKey).export({
    type: 'pkcs8',
    format: 'pem',
  }) as string;
  return { cert, keys, certPem: `${cert.toString('pem')}\n`, keyPem };
}
