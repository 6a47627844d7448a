/**
 * The Destination API of proto/destination.proto for TypeScript: the message shapes as grpc-js
 * hands them over (proto-loader with camelCase names, `oneofs`, defaults filled in), and one
 * loader both sides use. The proxy and the control plane share only this file and src/lib/
 * (DESIGN.md §10).
 */
import * as grpc from '@grpc/grpc-js';
import { type GrpcApi, loadGrpcApi } from './load.js';

export interface GetDestination {
  authority: string;
  contextToken: string;
}

export interface WeightedAddr {
  /** `host:port`. */
  addr: string;
  weight: number;
  /** SPIFFE ID, or '' when unknown. */
  identity: string;
  /** 'h2' | 'opaque' for a weft inbound proxy, '' for an unmeshed endpoint. */
  protocolHint: ProtocolHint;
  metricLabels: Record<string, string>;
}

export type ProtocolHint = 'h2' | 'opaque' | '';

/** One Get message; `update` names the field of the oneof that is set. */
export type Update =
  | { update: 'add'; add: { addrs: WeightedAddr[] } }
  | { update: 'remove'; remove: { addrs: WeightedAddr[] } }
  | { update: 'noEndpoints'; noEndpoints: { exists: boolean } };

export interface Route {
  name: string;
  retryable: boolean;
  timeoutMs: number;
}

export interface DestinationProfile {
  opaquePorts: number[];
  opaque: boolean;
  fullyQualifiedName: string;
  routes: Route[];
}

/** The generated client, typed for the two streams. */
export interface DestinationClient extends grpc.Client {
  Get(req: GetDestination, options?: grpc.CallOptions): grpc.ClientReadableStream<Update>;
  GetProfile(req: GetDestination, options?: grpc.CallOptions): grpc.ClientReadableStream<DestinationProfile>;
}

export type DestinationClientConstructor = new (
  target: string,
  creds: grpc.ChannelCredentials,
  options?: grpc.ChannelOptions,
) => DestinationClient;

/** Server-side handlers of the service. */
export interface DestinationHandlers extends grpc.UntypedServiceImplementation {
  Get: grpc.handleServerStreamingCall<GetDestination, Update>;
  GetProfile: grpc.handleServerStreamingCall<GetDestination, DestinationProfile>;
}

export type DestinationApi = GrpcApi<DestinationClientConstructor>;

interface Loaded {
  readonly api: DestinationApi;
  /** The proto encoders of the two response types. */
  readonly encodeUpdate: (u: Update) => Buffer;
  readonly encodeProfile: (p: DestinationProfile) => Buffer;
}

let loaded: Loaded | undefined;

/**
 * Loads proto/destination.proto once (synchronously). The server side of the service also
 * accepts responses already encoded with encodeUpdate or encodeProfile (a Buffer is written as
 * it is), so a message fanned out to many subscribers is encoded once rather than once per stream.
 */
function load(): Loaded {
  if (loaded) return loaded;
  const api = loadGrpcApi<DestinationClientConstructor>('destination.proto', 'weft.destination.v1', 'Destination');
  const { Get, GetProfile } = api.service;
  const passEncoded =
    <T>(encode: (m: T) => Buffer) =>
    (m: T | Buffer): Buffer =>
      Buffer.isBuffer(m) ? m : encode(m);
  loaded = {
    api: {
      ...api,
      service: {
        ...api.service,
        Get: { ...Get, responseSerialize: passEncoded(Get.responseSerialize) },
        GetProfile: { ...GetProfile, responseSerialize: passEncoded(GetProfile.responseSerialize) },
      },
    },
    encodeUpdate: Get.responseSerialize,
    encodeProfile: GetProfile.responseSerialize,
  };
  return loaded;
}

/** The service (see load() for the pre-encoded responses it accepts) and the client. */
export function destinationApi(): DestinationApi {
  return load().api;
}

/** The wire bytes of an Update, for writing the same bytes to many Get streams. */
export function encodeUpdate(update: Update): Buffer {
  return load().encodeUpdate(update);
}

/** The wire bytes of a DestinationProfile, for writing the same bytes to many GetProfile streams. */
export function encodeProfile(profile: DestinationProfile): Buffer {
  return load().encodeProfile(profile);
}
