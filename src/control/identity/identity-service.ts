/**
 * The identity service as the control plane runs it: its settings, the CA, the bootstrap tokens
 * and the gRPC server over TLS (docs/identity.md). The server's TLS asks for a client certificate
 * but does not require one: a proxy's first Certify has only its bootstrap token, its renewals
 * present the current leaf, which the handshake verifies against the trust anchors.
 */
import * as grpc from '@grpc/grpc-js';
import { identityApi } from '../../../proto/identity.js';
import { formatHostPort, type HostPort, parseHostPort } from '../../lib/addr.js';
import { parseString } from '../../lib/config.js';
import { ConfigError } from '../../lib/errors.js';
import type { Logger } from '../../lib/log.js';
import { type BootstrapTokens, newBootstrapTokens } from './bootstrap-tokens.js';
import { type CertificateAuthority, openCa } from './ca.js';
import { parseDurationMs } from './duration.js';
import { type IdentityServer, newIdentityServer } from './identity-server.js';
import { newServerCertificates } from './identity-server-cert.js';
import { parseTrustDomain } from './spiffe-id.js';

/** The identity settings of the control plane (merged into CONTROL_SETTINGS). */
export const IDENTITY_SETTINGS = {
  trustDomain: {
    env: 'WEFT_CONTROL_TRUST_DOMAIN',
    default: 'weft.local',
    parse: parseTrustDomain,
    doc: 'trust domain of every SPIFFE ID the mesh issues (spiffe://<trust-domain>/ns/N/sa/A)',
  },
  identityAddr: {
    env: 'WEFT_CONTROL_IDENTITY_ADDR',
    default: '127.0.0.1:8080',
    parse: (raw: string): HostPort => parseHostPort(raw),
    doc: 'listen address of the Identity gRPC service, TLS (port 0: any free port)',
  },
  identityLeafTtlMs: {
    env: 'WEFT_CONTROL_IDENTITY_LEAF_TTL',
    default: '24h',
    parse: parseDurationMs(5_000, 90 * 86_400_000),
    doc: 'lifetime of workload certificates, e.g. 24h or 20s (5s to 90d)',
  },
  identityAnchorsFile: {
    env: 'WEFT_CONTROL_IDENTITY_ANCHORS_FILE',
    parse: parseString,
    doc: 'PEM file of trust anchors, to use your own CA (with the two issuer files)',
  },
  identityIssuerCertFile: {
    env: 'WEFT_CONTROL_IDENTITY_ISSUER_CERT_FILE',
    parse: parseString,
    doc: 'PEM file of the issuer certificate, signed by one of the anchors',
  },
  identityIssuerKeyFile: {
    env: 'WEFT_CONTROL_IDENTITY_ISSUER_KEY_FILE',
    parse: parseString,
    doc: "PEM file of the issuer's ECDSA P-256 private key",
  },
} as const;

export interface IdentityServiceConfig {
  readonly state: string;
  readonly trustDomain: string;
  readonly identityAddr: HostPort;
  readonly identityLeafTtlMs: number;
  readonly identityAnchorsFile?: string;
  readonly identityIssuerCertFile?: string;
  readonly identityIssuerKeyFile?: string;
}

export interface RunningIdentityService {
  /** `host:port` the Identity gRPC service listens on. */
  readonly addr: string;
  readonly ca: CertificateAuthority;
  readonly tokens: BootstrapTokens;
  readonly server: IdentityServer;
  /** Ends streams, stops the server (forcibly after `graceMs`), stops renewals. Idempotent. */
  shutdown(graceMs: number): Promise<void>;
}

/** Opens the CA and serves Identity; rejects (releasing everything) on failure. */
export async function startIdentityService(
  config: IdentityServiceConfig,
  log: Logger,
): Promise<RunningIdentityService> {
  const ca = await openCa(
    {
      stateDir: config.state,
      trustDomain: config.trustDomain,
      leafTtlMs: config.identityLeafTtlMs,
      supplied: suppliedFiles(config),
    },
    log,
  );
  const tokens = newBootstrapTokens();
  const server = newIdentityServer(ca, tokens, log);
  const certs = newServerCertificates(ca, log);
  const grpcServer = new grpc.Server({
    'grpc.keepalive_time_ms': 30_000,
    'grpc.keepalive_timeout_ms': 10_000,
  });
  grpcServer.addService(identityApi().service, server.handlers);
  // One provider in both roles; requireClientCertificate=false: asked for, verified, optional.
  const creds = grpc.experimental.createCertificateProviderServerCredentials(
    certs.provider,
    certs.provider,
    false,
  );
  let port: number;
  try {
    port = await new Promise<number>((resolve, reject) =>
      grpcServer.bindAsync(formatHostPort(config.identityAddr), creds, (err, p) =>
        err ? reject(err) : resolve(p),
      ),
    );
  } catch (err) {
    grpcServer.forceShutdown();
    certs.close();
    ca.close();
    throw err;
  }
  let closing: Promise<void> | undefined;
  return {
    addr: formatHostPort({ host: config.identityAddr.host, port }),
    ca,
    tokens,
    server,
    shutdown: (graceMs) =>
      (closing ??= (async () => {
        server.endStreams();
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => {
            grpcServer.forceShutdown();
            resolve();
          }, graceMs);
          grpcServer.tryShutdown(() => {
            clearTimeout(timer);
            resolve();
          });
        });
        certs.close();
        ca.close();
      })()),
  };
}

function suppliedFiles(config: IdentityServiceConfig) {
  const files = [config.identityAnchorsFile, config.identityIssuerCertFile, config.identityIssuerKeyFile];
  const given = files.filter((f) => f !== undefined && f !== '').length;
  if (given === 0) return undefined;
  if (given !== 3)
    throw new ConfigError([
      'WEFT_CONTROL_IDENTITY_ANCHORS_FILE, WEFT_CONTROL_IDENTITY_ISSUER_CERT_FILE and WEFT_CONTROL_IDENTITY_ISSUER_KEY_FILE: give all three or none',
    ]);
  const [anchorsFile, issuerCertFile, issuerKeyFile] = files as string[];
  return { anchorsFile, issuerCertFile, issuerKeyFile };
}
