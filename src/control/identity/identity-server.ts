/**
 * The gRPC edge of the identity service (proto/identity.proto): Certify checks the request, the
 * CSR and then the credential (bootstrap token, or the verified client certificate of a renewal)
 * and signs a leaf; WatchTrust streams the trust bundle. Errors are typed inside and become gRPC
 * statuses only here (`grpcStatusOf`).
 */
import { createHash, X509Certificate } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import type {
  CertifyRequest,
  CertifyResponse,
  IdentityHandlers,
  TrustBundleMessage,
} from '../../../proto/identity.js';
import type { Logger } from '../../lib/log.js';
import { SubscriberStream } from '../destination/subscriber-stream.js';
import type { CertificateAuthority, TrustBundle } from './ca.js';
import { checkCsr } from './csr-check.js';
import { grpcStatusOf, IdentityDeniedError, UnauthenticatedError } from './identity-errors.js';
import { parseWorkloadId } from './spiffe-id.js';
import type { TokenValidator } from './token-validator.js';

/** Bundle changes a watcher may lag behind before it is cut off (changes are operator actions). */
const MAX_QUEUED_BUNDLES = 16;

export interface IdentityServer {
  readonly handlers: IdentityHandlers;
  /** Ends every WatchTrust stream (shutdown); clients reconnect elsewhere or later. */
  endStreams(): void;
  /** Certify outcomes so far, by result (`ok`, or the gRPC status name). */
  counts(): Readonly<Record<string, number>>;
}

export function newIdentityServer(
  ca: CertificateAuthority,
  tokens: TokenValidator,
  log: Logger,
): IdentityServer {
  const watchers = new Set<SubscriberStream<TrustBundleMessage>>();
  const counts: Record<string, number> = {};
  const count = (result: string) => {
    counts[result] = (counts[result] ?? 0) + 1;
  };
  ca.onChange(() => {
    const msg = toMessage(ca.bundle());
    for (const w of watchers) w.push(msg);
  });

  const certify = async (
    req: CertifyRequest,
    peer: X509Certificate | undefined,
  ): Promise<CertifyResponse> => {
    parseWorkloadId(req.identity, ca.trustDomain);
    const csr = checkCsr(req.certificateSigningRequest, req.identity);
    if (req.token !== '') await tokens.validate(req.token, req.identity, keyIdOf(csr.spki));
    else checkRenewal(peer, req.identity);
    const leaf = ca.issue(csr.spki, req.identity);
    return {
      leafPem: leaf.leafPem,
      intermediatePems: [...leaf.intermediatePems],
      validUntilUnixMs: leaf.notAfter.getTime(),
      trust: toMessage(ca.bundle()),
    };
  };

  const handlers: IdentityHandlers = {
    Certify: (call, callback) => {
      certify(call.request, peerLeaf(call)).then(
        (res) => {
          count('ok');
          log.debug('certificate issued', {
            identity: call.request.identity,
            renewal: call.request.token === '',
          });
          callback(null, res);
        },
        (err: unknown) => {
          const code = grpcStatusOf(err);
          count(grpc.status[code]);
          const details = err instanceof Error ? err.message : String(err);
          if (code === grpc.status.INTERNAL) log.error('certify failed', { error: String(err) });
          else
            log.warn('certify refused', {
              identity: call.request.identity,
              code: grpc.status[code],
              details,
            });
          callback({ code, details });
        },
      );
    },
    WatchTrust: (call) => {
      const stream = new SubscriberStream<TrustBundleMessage>(call, {
        maxQueued: MAX_QUEUED_BUNDLES,
        onOverflow: () => log.warn('trust watcher fell behind; disconnected'),
      });
      watchers.add(stream);
      call.on('cancelled', () => watchers.delete(stream));
      call.on('close', () => watchers.delete(stream));
      stream.push(toMessage(ca.bundle()));
    },
  };
  return {
    handlers,
    endStreams: () => {
      for (const w of watchers) w.end();
      watchers.clear();
    },
    counts: () => ({ ...counts }),
  };
}

/** A renewal: the caller's verified, unexpired leaf names exactly the identity asked for. */
/** Names a CSR's public key (its DER SubjectPublicKeyInfo) for TokenValidator.validate. */
function keyIdOf(spki: Buffer): string {
  return createHash('sha256').update(spki).digest('hex');
}

function checkRenewal(peer: X509Certificate | undefined, identity: string): void {
  if (!peer) throw new UnauthenticatedError('no token and no verified client certificate');
  if (new Date(peer.validTo).getTime() <= Date.now())
    throw new UnauthenticatedError('the client certificate has expired');
  const uris = (peer.subjectAltName ?? '')
    .split(', ')
    .filter((n) => n.startsWith('URI:'))
    .map((n) => n.slice(4));
  if (uris.length !== 1 || uris[0] !== identity)
    throw new IdentityDeniedError(identity, uris.join(' ') || 'no URI');
}

/**
 * The client certificate of the call's connection, when the TLS handshake verified it against
 * the trust anchors (grpc-js reports only verified certificates: `socket.authorized`).
 */
function peerLeaf(call: grpc.ServerUnaryCall<unknown, unknown>): X509Certificate | undefined {
  const raw = call.getAuthContext().sslPeerCertificate?.raw;
  return raw ? new X509Certificate(raw) : undefined;
}

function toMessage(b: TrustBundle): TrustBundleMessage {
  return { anchorPems: [...b.anchorPems], issuerGeneration: b.issuerGeneration, trustDomain: b.trustDomain };
}
