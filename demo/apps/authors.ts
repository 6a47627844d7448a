/**
 * The demo's `authors` service: a gRPC server (demo/proto/authors.proto) on 127.0.0.1:$PORT. It
 * calls nothing; an unknown id answers NOT_FOUND.
 */
import * as grpc from '@grpc/grpc-js';
import { type Author, authorsApi } from './authors-api.js';

const AUTHORS: Record<string, Omit<Author, 'servedBy'>> = {
  '1': { id: '1', name: 'Ursula K. Le Guin', born: 1929 },
  '2': { id: '2', name: 'Italo Calvino', born: 1923 },
  '3': { id: '3', name: 'Octavia E. Butler', born: 1947 },
};

const port = Number(process.env.PORT);
const server = new grpc.Server();
server.addService(authorsApi().service, {
  GetAuthor(call: grpc.ServerUnaryCall<{ id: string }, Author>, cb: grpc.sendUnaryData<Author>) {
    const author = AUTHORS[call.request.id];
    if (!author) return cb({ code: grpc.status.NOT_FOUND, details: `no author ${call.request.id}` });
    cb(null, { ...author, servedBy: `authors pid ${process.pid}` });
  },
});
server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err) => {
  if (err) {
    process.stderr.write(`authors: ${err.message}\n`);
    process.exit(1);
  }
  process.stdout.write(`${JSON.stringify({ app: 'authors', listening: port, pid: process.pid })}\n`);
});
const stop = () => server.tryShutdown(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
