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

let loaded: DestinationApi | undefined;

/** Loads proto/destination.proto once (synchronously) and returns its service and client. */
export function destinationApi(): DestinationApi {
  loaded ??= loadGrpcApi<DestinationClientConstructor>('destination.proto', 'weft.destination.v1', 'Destination');
  return loaded;
}
