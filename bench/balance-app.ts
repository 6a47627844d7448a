/**
 * The balancing scenario's upstream (bench/balance-scenario.sh): one process, one HTTP/1.1
 * listener per `--endpoint PORT:DELAY_MS`, each answering 200 with a small body after its delay.
 * On SIGTERM it writes how many requests each endpoint answered to `--counts FILE` (JSON) and exits;
 * SIGUSR2 sets the counts back to zero (after the warm-up).
 *
 *   node dist/bench/balance-app.js --endpoint 18280:1 --endpoint 18281:1 --endpoint 18282:10 --counts c.json
 */
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: { endpoint: { type: 'string', multiple: true, default: [] }, counts: { type: 'string' } },
});
const BODY = 'hello from upstream\n';
const counts: Record<string, number> = {};
const servers: http.Server[] = [];

for (const spec of values.endpoint ?? []) {
  const [port, delay] = spec.split(':').map(Number);
  if (!Number.isInteger(port) || !(delay >= 0)) throw new Error(`--endpoint ${spec} is not PORT:DELAY_MS`);
  const key = `127.0.0.1:${port} (${delay} ms)`;
  counts[key] = 0;
  const server = http.createServer({ keepAliveTimeout: 120_000 }, (_req, res) => {
    counts[key]++;
    setTimeout(() => res.writeHead(200, { 'content-type': 'text/plain' }).end(BODY), delay);
  });
  server.listen(port, '127.0.0.1');
  servers.push(server);
}

process.on('SIGUSR2', () => {
  for (const k in counts) counts[k] = 0;
});
process.on('SIGTERM', () => {
  if (values.counts) writeFileSync(values.counts, `${JSON.stringify(counts)}\n`);
  process.exit(0);
});
