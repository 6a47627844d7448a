/**
 * The Policy API of proto/policy.proto for TypeScript: the message shapes as grpc-js hands them
 * over (proto-loader with camelCase names and defaults filled in, so every field is present), and
 * one loader both sides use. The compiled policy types are those of src/lib/authz.ts, so the
 * proxy evaluates exactly what arrives.
 */
import * as grpc from '@grpc/grpc-js';
import { type GrpcApi, loadGrpcApi } from './load.js';
import type { InboundPolicy } from '../src/lib/authz.js';

export type { InboundPolicy };

export interface InboundWorkload {
  namespace: string;
  service: string;
  workload: string;
  identity: string;
  ports: number[];
}

/** The generated client, typed for the one stream. */
export interface PolicyClient extends grpc.Client {
  WatchInbound(req: InboundWorkload, options?: grpc.CallOptions): grpc.ClientReadableStream<InboundPolicy>;
}

export type PolicyClientConstructor = new (
  target: string,
  creds: grpc.ChannelCredentials,
  options?: grpc.ChannelOptions,
) => PolicyClient;

/** Server-side handlers of the service. */
export interface PolicyHandlers extends grpc.UntypedServiceImplementation {
  WatchInbound: grpc.handleServerStreamingCall<InboundWorkload, InboundPolicy>;
}

export type PolicyApi = GrpcApi<PolicyClientConstructor>;

let loaded: PolicyApi | undefined;

/** Loads proto/policy.proto once (synchronously) and returns its service and client. */
export function policyApi(): PolicyApi {
  loaded ??= loadGrpcApi<PolicyClientConstructor>('policy.proto', 'weft.policy.v1', 'Policy');
  return loaded;
}
