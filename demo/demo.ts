/**
 * `weft demo`: a two-service example through two sidecar proxies, until the control plane
 * exists. `hello` (an HTTP app) runs behind its inbound proxy; a client sidecar's outbound proxy
 * knows `hello:7001` from a static destinations file; a traffic generator calls hello through
 * it. Runs until Ctrl-C, then stops every process it started.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const WEFT = path.join(REPO, 'bin/weft.js');
const HELLO_PORT = 7001;
const CLIENT_OUTBOUND = '127.0.0.1:4140';
const CLIENT_ADMIN = '127.0.0.1:4191';
const HELLO_INBOUND = '127.0.0.1:4143';
const HELLO_ADMIN = '127.0.0.1:4192';
const TRAFFIC_INTERVAL_MS = 250;

export async function runDemo(stateDir = path.join(process.cwd(), '.weft')): Promise<number> {
  mkdirSync(stateDir, { recursive: true });
  const destinations = path.join(stateDir, 'demo-destinations.yaml');
  writeFileSync(
    destinations,
    `destinations:\n  - authority: hello:${HELLO_PORT}\n    endpoints:\n      - address: ${HELLO_INBOUND}\n        meshed: true\n        labels: { service: hello }\n`,
  );
  const children: ChildProcess[] = [];
  const start = (name: string, args: string[], env: NodeJS.ProcessEnv = {}) => {
    const child = spawn(process.execPath, args, {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const prefix = (chunk: Buffer) =>
      chunk
        .toString()
        .split('\n')
        .filter((l) => l)
        .map((l) => `[${name}] ${l}\n`)
        .join('');
    child.stdout?.on('data', (c: Buffer) => process.stdout.write(prefix(c)));
    child.stderr?.on('data', (c: Buffer) => process.stderr.write(prefix(c)));
    child.on(
      'exit',
      (code, signal) => !stopping && process.stderr.write(`[demo] ${name} exited (${code ?? signal})\n`),
    );
    children.push(child);
    return child;
  };
  let stopping = false;
  start('hello', [path.join(REPO, 'dist/demo/apps/hello.js')], { PORT: String(HELLO_PORT) });
  start(
    'hello-proxy',
    [
      WEFT,
      'proxy',
      '--inbound-listen-addr',
      HELLO_INBOUND,
      '--outbound-listen-addr',
      'none',
      '--admin-listen-addr',
      HELLO_ADMIN,
      '--app-port',
      String(HELLO_PORT),
    ],
    { WEFT_PROXY_LOG_LEVEL: 'warn' },
  );
  start(
    'client-proxy',
    [
      WEFT,
      'proxy',
      '--outbound-listen-addr',
      CLIENT_OUTBOUND,
      '--inbound-listen-addr',
      'none',
      '--admin-listen-addr',
      CLIENT_ADMIN,
      '--destinations',
      destinations,
    ],
    { WEFT_PROXY_LOG_LEVEL: 'warn' },
  );
  await waitReady([`http://${CLIENT_ADMIN}/ready`, `http://${HELLO_ADMIN}/ready`]);

  let sent = 0;
  const traffic = setInterval(() => {
    sent++;
    const req = http.get(
      { host: '127.0.0.1', port: 4140, path: `/greet/${sent}`, headers: { host: `hello:${HELLO_PORT}` } },
      (res) => res.resume(),
    );
    req.on('error', () => {});
  }, TRAFFIC_INTERVAL_MS);

  process.stdout.write(
    [
      '',
      'Weft demo is running: client -> outbound proxy (4140) -> inbound proxy (4143) -> hello (7001).',
      'A traffic generator sends 4 requests a second; hello fails about 1 in 10 on purpose.',
      '',
      'Try:',
      `  curl -s -H 'Host: hello:${HELLO_PORT}' http://${CLIENT_OUTBOUND}/`,
      `  curl -s -x http://${CLIENT_OUTBOUND} http://hello:${HELLO_PORT}/        # as HTTP_PROXY`,
      `  curl -s http://${CLIENT_ADMIN}/metrics | grep -E '^(request|response)_total'   # client side`,
      `  curl -s http://${HELLO_ADMIN}/metrics | grep -E '^response_total'            # server side`,
      '',
      'Ctrl-C stops everything.',
      '',
    ].join('\n'),
  );

  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  stopping = true;
  clearInterval(traffic);
  await Promise.all(
    children.map(
      (c) =>
        new Promise<void>((r) => {
          if (c.exitCode !== null || c.signalCode !== null) return r();
          c.once('exit', () => r());
          c.kill('SIGTERM');
          setTimeout(() => c.kill('SIGKILL'), 5000).unref();
        }),
    ),
  );
  process.stdout.write('[demo] stopped\n');
  return 0;
}

async function waitReady(urls: string[], timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (const url of urls) {
    for (;;) {
      const ok = await new Promise<boolean>((r) => {
        http
          .get(url, (res) => {
            res.resume();
            r(res.statusCode === 200);
          })
          .on('error', () => r(false));
      });
      if (ok) break;
      if (Date.now() > deadline) throw new Error(`demo: ${url} not ready after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
