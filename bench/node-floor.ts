/**
 * The memory floor of a Node proxy on this machine, measured beside Weft in every bench run
 * (issue 5's idle-RSS target is an absolute number, so the run should say what Node itself costs).
 *
 * Two processes, each with the proxy's own node flags (src/proxy/node-flags.ts), measured the way
 * bench/mesh-check.sh measures a Weft hop: VmRSS after the requests and 3 s of quiet.
 * - `bare`: node with nothing loaded, waiting on a timer.
 * - `tls`: the least a TLS HTTP proxy holds, and nothing else: one node:http2 secure server that
 *   also speaks HTTP/1.1 (ALPN), answering "ok", and its own client over TLS, 200 HTTP/1.1
 *   requests on a keep-alive connection and 200 HTTP/2 requests on one session. No discovery,
 *   identity, policy, metrics, or forwarding: any Node proxy with TLS holds at least this.
 *
 * Usage: node dist/bench/node-floor.js OUT.json (generates a throwaway key and certificate with
 * the openssl CLI in a temporary directory). Prints one line per process and writes
 * { bare: Rss, tls: Rss } with Rss = { rss_kb, anon_kb, file_kb } to OUT.json.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PROXY_NODE_FLAGS } from '../src/proxy/node-flags.js';
import { readStatusKb } from './proc-stats.js';

const REQUESTS = 200;
const IDLE_MS = 3000;

interface Rss {
  rss_kb: number;
  anon_kb: number;
  file_kb: number;
}

function ownRss(): Rss {
  const kb = readStatusKb('self', ['VmRSS', 'RssAnon', 'RssFile']);
  return { rss_kb: kb.VmRSS, anon_kb: kb.RssAnon, file_kb: kb.RssFile };
}

/** The `tls` process: serve and call itself over TLS in both protocols, then report after quiet. */
async function tlsFloor(dir: string): Promise<Rss> {
  // Loaded here, not at the top, so that `bare` stays bare.
  const [{ default: http2 }, { default: https }] = await Promise.all([
    import('node:http2'),
    import('node:https'),
  ]);
  const server = http2.createSecureServer(
    { key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')), allowHTTP1: true },
    (_req, res) => res.end('ok'),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const ca = readFileSync(join(dir, 'cert.pem'));

  const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca });
  for (let i = 0; i < REQUESTS; i++)
    await new Promise<void>((resolve, reject) =>
      https
        .get({ host: '127.0.0.1', servername: 'localhost', port, path: '/', agent }, (res) =>
          res.resume().on('end', resolve).on('error', reject),
        )
        .on('error', reject),
    );
  agent.destroy();

  const session = http2.connect(`https://localhost:${port}`, { ca, host: '127.0.0.1' });
  for (let i = 0; i < REQUESTS; i++)
    await new Promise<void>((resolve, reject) =>
      session.request({ ':path': '/' }).on('error', reject).resume().on('end', resolve),
    );
  session.close();

  await new Promise((resolve) => setTimeout(resolve, IDLE_MS));
  const rss = ownRss();
  server.close();
  return rss;
}

/** Runs this file as `mode` in a fresh node with the proxy's flags; resolves with what it printed. */
function measure(mode: 'bare' | 'tls', dir: string): Promise<Rss> {
  const self = fileURLToPath(import.meta.url);
  const child = spawn(process.execPath, [...PROXY_NODE_FLAGS, self, `--${mode}`, dir], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (c) => (out += c));
  return new Promise((resolve, reject) =>
    child.on('close', (code) =>
      code === 0
        ? resolve(JSON.parse(out) as Rss)
        : reject(new Error(`node-floor --${mode} exited with ${code}`)),
    ),
  );
}

async function main(args: string[]): Promise<void> {
  if (args[0] === '--bare') {
    // Only this file's small imports are loaded (node:fs and the like, which a proxy has too).
    await new Promise((resolve) => setTimeout(resolve, IDLE_MS));
    process.stdout.write(JSON.stringify(ownRss()));
    return;
  }
  if (args[0] === '--tls') {
    process.stdout.write(JSON.stringify(await tlsFloor(args[1] as string)));
    return;
  }
  const outFile = args[0];
  if (!outFile) throw new Error('usage: node-floor.js OUT.json');
  const dir = mkdtempSync(join(tmpdir(), 'weft-node-floor-'));
  try {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=localhost',
        '-addext',
        'subjectAltName=DNS:localhost',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
      ],
      { stdio: 'ignore' },
    );
    const result = { bare: await measure('bare', dir), tls: await measure('tls', dir) };
    for (const [mode, r] of Object.entries(result))
      console.log(
        `node floor, ${mode}: VmRSS ${(r.rss_kb / 1024).toFixed(1)} MiB (RssAnon ${(r.anon_kb / 1024).toFixed(1)}, RssFile ${(r.file_kb / 1024).toFixed(1)})`,
      );
    writeFileSync(outFile, `${JSON.stringify(result, null, 2)}\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main(process.argv.slice(2));
