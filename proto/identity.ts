/**
 * The Identity API of proto/identity.proto for TypeScript: the message shapes as grpc-js hands
 * them over (proto-loader with camelCase names, defaults filled in, int64 as Number), and one
 * loader both sides use. Mirrors proto/destination.ts.
 */
import * as grpc from '@grpc/grpc-js';
import { type GrpcApi, loadGrpcApi } from './load.js';

export interface CertifyRequest {
  /** The SPIFFE ID asked for. */
  identity: string;
  /** Bootstrap token, or '' to renew with the current leaf as client certificate. */
  token: string;
  /** PKCS#10 CSR, DER. */
  certificateSigningRequest: Buffer | Uint8Array;
}

export interface TrustBundleMessage {
  anchorPems: string[];
  issuerGeneration: string;
  trustDomain: string;
}

export interface CertifyResponse {
  leafPem: string;
  intermediatePems: string[];
  validUntilUnixMs: number;
  trust: TrustBundleMessage;
}

export type WatchTrustRequest = Record<string, never>;

/** The generated client, typed. */
export interface IdentityClient extends grpc.Client {
  Certify(
    req: CertifyRequest,
    callback: (err: grpc.ServiceError | null, res?: CertifyResponse) => void,
  ): grpc.ClientUnaryCall;
  Certify(
    req: CertifyRequest,
    options: grpc.CallOptions,
    callback: (err: grpc.ServiceError | null, res?: CertifyResponse) => void,
  ): grpc.ClientUnaryCall;
  WatchTrust(req: WatchTrustRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<TrustBundleMessage>;
}

export type IdentityClientConstructor = new (
  target: string,
  creds: grpc.ChannelCredentials,
  options?: grpc.ChannelOptions,
) => IdentityClient;

/** Server-side handlers of the service. */
export interface IdentityHandlers extends grpc.UntypedServiceImplementation {
  Certify: grpc.handleUnaryCall<CertifyRequest, CertifyResponse>;
  WatchTrust: grpc.handleServerStreamingCall<WatchTrustRequest, TrustBundleMessage>;
}

export type IdentityApi = GrpcApi<IdentityClientConstructor>;

let loaded: IdentityApi | undefined;

/** Loads proto/identity.proto once (synchronously) and returns its service and client. */
export function identityApi(): IdentityApi {
  loaded ??= loadGrpcApi<IdentityClientConstructor>('identity.proto', 'weft.identity.v1', 'Identity');
  return loaded;
}
