/**
 * Client side of the identity service for tests: CSRs (good and deliberately bad ones) made with
 * @peculiar/x509, and real grpc-js Identity clients over TLS that verify the server's SPIFFE ID.
 */
import 'reflect-metadata';
import { KeyObject, webcrypto, X509Certificate } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import * as x509 from '@peculiar/x509';
import {
  type CertifyRequest,
  type CertifyResponse,
  type IdentityClient,
  identityApi,
} from '../../proto/identity.js';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

export interface CsrOptions {
  /** Default P-256. */
  readonly curve?: 'P-256' | 'P-384';
  /** SANs to put in the request (default: one URI, the identity). */
  readonly sans?: x509.JsonGeneralName[];
}

/** A fresh key (PKCS#8 PEM) and a DER CSR for `identity`. */
export async function newCsr(
  identity: string,
  opts: CsrOptions = {},
): Promise<{ keyPem: string; csr: Buffer }> {
  const alg = { name: 'ECDSA', namedCurve: opts.curve ?? 'P-256' };
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    keys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: [new x509.SubjectAlternativeNameExtension(opts.sans ?? [{ type: 'url', value: identity }])],
  });
  const keyPem = KeyObject.from(keys.privateKey as webcrypto.CryptoKey).export({
    type: 'pkcs8',
    format: 'pem',
  }) as string;
  return { keyPem, csr: Buffer.from(csr.rawData) };
}

/** The one URI SAN of a PEM certificate. */
export function uriSanOf(pem: string): string | undefined {
  const uris = (new X509Certificate(pem).subjectAltName ?? '')
    .split(', ')
    .filter((n) => n.startsWith('URI:'));
  return uris.length === 1 ? uris[0].slice(4) : undefined;
}

/**
 * A client of the Identity service at `addr` that trusts `anchorsPem` and requires the server to
 * be `serverId` (URI SAN); with `client`, presents that certificate chain (a renewal).
 */
export function identityClient(
  addr: string,
  anchorsPem: string,
  serverId: string,
  client?: { keyPem: string; chainPem: string },
  channelOptions: grpc.ChannelOptions = {},
): IdentityClient {
  const creds = grpc.credentials.createSsl(
    Buffer.from(anchorsPem),
    client ? Buffer.from(client.keyPem) : null,
    client ? Buffer.from(client.chainPem) : null,
    {
      checkServerIdentity: (_host, cert) =>
        uriSanOf(
          `-----BEGIN CERTIFICATE-----\n${cert.raw.toString('base64')}\n-----END CERTIFICATE-----\n`,
        ) === serverId
          ? undefined
          : new Error(`server is not ${serverId}`),
    },
  );
  return new (identityApi().Client)(addr, creds, channelOptions);
}

/** Certify as a promise; rejects with the grpc ServiceError. */
export function certify(client: IdentityClient, req: Partial<CertifyRequest>): Promise<CertifyResponse> {
  return new Promise((resolve, reject) =>
    client.Certify(
      { identity: '', token: '', certificateSigningRequest: Buffer.alloc(0), ...req },
      { deadline: Date.now() + 10_000 },
      (err, res) => (err ? reject(err) : resolve(res as CertifyResponse)),
    ),
  );
}
