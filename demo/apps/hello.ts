/**
 * The demo's `hello` service: a small HTTP/1.1 JSON app on $PORT. One request in ten fails with
 * 500 and a few are slow, so the proxies' metrics have something to show.
 */
import http from 'node:http';

const port = Number(process.env.PORT ?? 7001);
let served = 0;
const server = http.createServer((req, res) => {
  served++;
  const roll = Math.random();
  const reply = (status: number, body: unknown) => {
    const text = `${JSON.stringify(body)}\n`;
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  };
  if (req.url === '/fail' || roll < 0.1) return reply(500, { error: 'hello failed on purpose', served });
  const delayMs = roll > 0.95 ? 150 : 0;
  setTimeout(() => reply(200, { greeting: `hello from pid ${process.pid}`, path: req.url, served }), delayMs);
});
server.listen(port, '127.0.0.1', () => process.stdout.write(`hello listening on 127.0.0.1:${port}\n`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
