/**
 * The demo's `books` service: an HTTP/1.1 JSON app on 127.0.0.1:$PORT, run as two replicas. It is
 * the deliberately flaky one: about one request in ten (DEMO_BOOKS_FAILURE_RATE) fails with 500.
 */
import http from 'node:http';

const BOOKS = [
  { id: '1', title: 'The Dispossessed', authorId: '1' },
  { id: '2', title: 'Invisible Cities', authorId: '2' },
  { id: '3', title: 'Kindred', authorId: '3' },
];
const failureRate = Number(process.env.DEMO_BOOKS_FAILURE_RATE ?? 0.1);
const port = Number(process.env.PORT);
let served = 0;

const server = http.createServer((req, res) => {
  served++;
  const reply = (status: number, body: unknown) => {
    const text = `${JSON.stringify(body)}\n`;
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  };
  if (req.url === '/fail' || Math.random() < failureRate)
    return reply(500, { error: 'books failed on purpose', pid: process.pid });
  const m = /^\/books\/([^/?]+)/.exec(req.url ?? '');
  if (m) {
    const book = BOOKS.find((b) => b.id === m[1]);
    return book ? reply(200, { ...book, servedBy: process.pid }) : reply(404, { error: 'no such book' });
  }
  reply(200, { books: BOOKS, servedBy: process.pid, served });
});
server.listen(port, '127.0.0.1', () =>
  process.stdout.write(`${JSON.stringify({ app: 'books', listening: port, pid: process.pid })}\n`),
);
const stop = () => {
  server.close(() => process.exit(0));
  server.closeIdleConnections();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
