/**
 * Loads one service of a .proto file in proto/ for grpc-js, the same way for every API: field
 * names camelCased, longs as numbers, enums as strings, defaults filled in, oneofs named.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

export interface GrpcApi<C> {
  readonly service: grpc.ServiceDefinition;
  readonly Client: C;
}

/**
 * Service `name` of `file` (e.g. 'identity.proto') in package `pkg` (e.g. 'weft.identity.v1');
 * `C` is the caller's typed client constructor.
 */
export function loadGrpcApi<C>(file: string, pkg: string, name: string): GrpcApi<C> {
  const def = protoLoader.loadSync(protoPath(file), {
    keepCase: false,
    longs: Number,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  let node: unknown = grpc.loadPackageDefinition(def);
  for (const part of [...pkg.split('.'), name]) node = (node as Record<string, unknown> | undefined)?.[part];
  if (typeof node !== 'function') throw new Error(`service ${pkg}.${name} not found in proto/${file}`);
  const ctor = node as grpc.ServiceClientConstructor;
  return { service: ctor.service, Client: ctor as unknown as C };
}

/** The .proto file next to this module's source: dist/proto/*.js → ../../proto, or proto/*.ts → ./. */
function protoPath(file: string): string {
  for (const rel of [`../../proto/${file}`, `./${file}`]) {
    const path = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(path)) return path;
  }
  throw new Error(`proto/${file} not found next to the compiled API module`);
}
