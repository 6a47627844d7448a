/** The generated Authors service and client of demo/proto/authors.proto, typed for the demo. */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { AUTHORS_PROTO } from '../paths.js';

export interface Author {
  id: string;
  name: string;
  born: number;
  servedBy: string;
}

export interface AuthorsClient extends grpc.Client {
  GetAuthor(
    req: { id: string },
    md: grpc.Metadata,
    opts: grpc.CallOptions,
    cb: (err: grpc.ServiceError | null, value?: Author) => void,
  ): grpc.ClientUnaryCall;
}

export function authorsApi(): {
  service: grpc.ServiceDefinition;
  Client: new (target: string, creds: grpc.ChannelCredentials, opts?: grpc.ChannelOptions) => AuthorsClient;
} {
  const def = protoLoader.loadSync(AUTHORS_PROTO, { defaults: true });
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    weft: { demo: { Authors: grpc.ServiceClientConstructor } };
  };
  const Authors = pkg.weft.demo.Authors;
  return { service: Authors.service, Client: Authors as unknown as ReturnType<typeof authorsApi>['Client'] };
}
