/**
 * The demo's `web` front end: an HTTP app on 127.0.0.1:$PORT. Each request picks a book, asks
 * `books` for it over HTTP/1.1 through HTTP_PROXY, then `authors` for its author over gRPC
 * (grpc-js tunnels through grpc_proxy). A failure of either becomes a 502 naming it.
 */
import http from 'node:http';
import * as grpc from '@grpc/grpc-js';
import { SERVICE_PORTS } from '../paths.js';
import { type Author, authorsApi } from './authors-api.js';

const port = Number(process.env.PORT);
const proxy = new URL(process.env.HTTP_PROXY ?? 'http://127.0.0.1:4140');
const BOOKS = `books:${SERVICE_PORTS.books}`;
const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
// grpc-js reads grpc_proxy from the environment: the channel tunnels to authors through the proxy.
const authors = new (authorsApi().Client)(
  `authors:${SERVICE_PORTS.authors}`,
  grpc.credentials.createInsecure(),
);

interface Book {
  id: string;
  title: string;
  authorId: string;
}

/** GET http://books:7002<path> in absolute form through the proxy. */
function getBook(id: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: proxy.hostname,
        port: Number(proxy.port),
        path: `http://${BOOKS}/books/${id}`,
        headers: { host: BOOKS },
        agent,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', reject);
      },
    );
    req.setTimeout(5000, () => req.destroy(new Error('books timed out')));
    req.on('error', reject);
    req.end();
  });
}

function getAuthor(id: string): Promise<Author> {
  return new Promise((resolve, reject) =>
    authors.GetAuthor({ id }, new grpc.Metadata(), { deadline: Date.now() + 5000 }, (err, value) =>
      err ? reject(err) : resolve(value as Author),
    ),
  );
}

const server = http.createServer(async (_req, res) => {
  const reply = (status: number, body: unknown) => {
    const text = `${JSON.stringify(body)}\n`;
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  };
  const id = String(1 + Math.floor(Math.random() * 3));
  let book: Book;
  try {
    const r = await getBook(id);
    if (r.status !== 200) return reply(502, { error: `books answered ${r.status}`, books: r.body.trim() });
    book = JSON.parse(r.body) as Book;
  } catch (err) {
    return reply(502, { error: `books unreachable: ${(err as Error).message}` });
  }
  try {
    const author = await getAuthor(book.authorId);
    reply(200, { book, author, servedBy: process.pid });
  } catch (err) {
    reply(502, { error: `authors failed: ${(err as Error).message}` });
  }
});
server.listen(port, '127.0.0.1', () =>
  process.stdout.write(`${JSON.stringify({ app: 'web', listening: port, pid: process.pid })}\n`),
);
const stop = () => {
  authors.close();
  agent.destroy();
  server.close(() => process.exit(0));
  server.closeIdleConnections();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
