/**
 * gRPC clients of the control plane's Identity service (proto/identity.proto) over TLS: the
 * server's chain must end at one of our trust anchors and its URI SAN must be
 * `spiffe://<trust-domain>/ns/weft/sa/identity` (docs/identity.md); the host name is not checked.
 * A client is made per use with the anchors (and client certificate) of that moment, so a rotated
 * anchor or a renewed leaf is picked up without tracking channel state.
 */
import { X509Certificate } from 'node:crypto';
import type tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { type IdentityClient, identityApi } from '../../../proto/identity.js';
import { uriSans } from './identity-state.js';
import type { IdentityMaterial } from './local-identity.js';

/** The identity service's own SPIFFE ID in `trustDomain`. */
export function identityServiceId(trustDomain: string): string {
  return `spiffe://${trustDomain}/ns/weft/sa/identity`;
}

/** The trust domain of a SPIFFE ID (`spiffe://<td>/...`). */
export function trustDomainOf(id: string): string {
  return new URL(id).host;
}

export interface ChannelOptions {
  /** `host:port` of the Identity service. */
  readonly addr: string;
  readonly trustDomain: string;
  /** PEM anchors the server's chain must end at. */
  readonly anchors: readonly string[];
  /** Presented as client certificate (renewal); none for bootstrap and WatchTrust. */
  readonly clientCert?: IdentityMaterial;
}

/** A client for one use; the caller closes it. */
export function newIdentityGrpcClient(opts: ChannelOptions): IdentityClient {
  const expected = identityServiceId(opts.trustDomain);
  const creds = grpc.credentials.createSsl(
    Buffer.from(opts.anchors.join('')),
    opts.clientCert ? Buffer.from(opts.clientCert.keyPem) : null,
    opts.clientCert ? Buffer.from(opts.clientCert.chainPem.join('')) : null,
    {
      // Called only after the chain verified against the anchors.
      checkServerIdentity: (_host: string, cert: tls.PeerCertificate) => {
        const ids = cert.raw ? uriSans(new X509Certificate(cert.raw)) : [];
        return ids.length === 1 && ids[0] === expected
          ? undefined
          : new Error(`identity service presented ${JSON.stringify(ids)}, expected ${expected}`);
      },
    },
  );
  return new (identityApi().Client)(opts.addr, creds, {
    // A DNS-style server name instead of the (usually IP) target: an IP address as TLS SNI is
    // refused by RFC 6066 and warned about by Node. The name itself is not checked (see above).
    'grpc.ssl_target_name_override': `identity.${opts.trustDomain}`,
    'grpc.keepalive_time_ms': 10_000,
    'grpc.keepalive_timeout_ms': 5_000,
    // One attempt per call: the caller's own backoff decides when to try again.
    'grpc.initial_reconnect_backoff_ms': 100,
    'grpc.max_reconnect_backoff_ms': 1_000,
    'grpc.enable_retries': 0,
  });
}
