/**
 * Certificate issuance benchmark (issue 4's Performance section; issue 5 target ≥ 500/s): how
 * many leaf certificates per second the control plane issues through the real path, a gRPC
 * Certify over TLS with a bootstrap token and a CSR, checked and signed.
 *
 * Starts `weft control` as a child process (temporary state, port-0 addresses), mints `--count`
 * + `--warmup` tokens through the HTTP API beforehand, prepares `--csrs` CSRs (key generation is
 * the proxy's cost, not the CA's), then runs the warm-up and the measured Certify calls with
 * `--concurrency` calls in flight over `--channels` TLS connections. Every response is checked
 * (leaf present). Prints a Markdown table and writes JSON to bench/results/identity-issuance-<ts>.json.
 * Bounded by `--timeout-ms`; the child is killed on exit.
 *
 *   npm run bench:identity [-- --count 5000 --concurrency 64]
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { IdentityClient } from '../proto/identity.js';
import { parseHostPort } from '../src/lib/addr.js';
import { newIdentityApiClient } from '../src/lib/api-client-identity.js';
import { onceLine } from '../test/support/eventually.js';
import { certify, identityClient, newCsr } from '../test/support/identity.js';
import { REPO_ROOT, WEFT_BIN } from '../test/support/paths.js';
import { readCpuSeconds } from './proc-stats.js';

const { values: flags } = parseArgs({
  options: {
    count: { type: 'string', default: '3000' },
    warmup: { type: 'string', default: '300' },
    concurrency: { type: 'string', default: '32' },
    channels: { type: 'string', default: '4' },
    csrs: { type: 'string', default: '64' },
    'timeout-ms': { type: 'string', default: '180000' },
  },
});
const COUNT = Number(flags.count);
const WARMUP = Number(flags.warmup);
const CONCURRENCY = Number(flags.concurrency);
const CHANNELS = Number(flags.channels);
const CSRS = Number(flags.csrs);
const TIMEOUT_MS = Number(flags['timeout-ms']);
for (const [name, v] of Object.entries({ COUNT, CONCURRENCY, CHANNELS, CSRS, TIMEOUT_MS }))
  if (!Number.isInteger(v) || v < 1) throw new Error(`${name.toLowerCase()} must be a positive integer`);
const IDENTITY = 'spiffe://weft.local/ns/bench/sa/issuance';
const TARGET_PER_S = 500;

const stateDir = mkdtempSync(join(tmpdir(), 'weft-bench-identity-'));
let control: ChildProcess | undefined;
process.on('exit', () => {
  if (control && control.exitCode === null && control.signalCode === null) control.kill('SIGKILL');
  rmSync(stateDir, { recursive: true, force: true });
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => process.exit(130));
setTimeout(() => {
  process.stderr.write(`identity-issuance: gave up after ${TIMEOUT_MS} ms\n`);
  process.exit(1);
}, TIMEOUT_MS).unref();

async function startControl() {
  const child = spawn(process.execPath, [WEFT_BIN, 'control'], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: {
      ...process.env,
      WEFT_CONTROL_STATE: stateDir,
      WEFT_CONTROL_DESTINATION_ADDR: '127.0.0.1:0',
      WEFT_CONTROL_API_ADDR: '127.0.0.1:0',
      WEFT_CONTROL_IDENTITY_ADDR: '127.0.0.1:0',
      WEFT_CONTROL_LOG_LEVEL: 'info',
    },
  });
  control = child;
  const line = await onceLine(child.stderr, (l) => l.includes('"control plane ready"'), 20_000);
  child.stderr.resume();
  const ready = JSON.parse(line) as { api: string; identity: string };
  return { pid: child.pid as number, api: ready.api, identity: ready.identity };
}

/** Mints `n` tokens through the API, 16 requests at a time. */
async function mintTokens(api: string, n: number): Promise<string[]> {
  const client = newIdentityApiClient(parseHostPort(api));
  const tokens: string[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < n) {
        next++;
        tokens.push((await client.mintToken(IDENTITY)).token);
      }
    }),
  );
  return tokens;
}

/** Runs `tokens.length` Certify calls, CONCURRENCY at a time; returns per-call latencies (ms). */
async function run(clients: IdentityClient[], tokens: string[], csrs: Buffer[]): Promise<number[]> {
  const latencies: number[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async (_, worker) => {
      const client = clients[worker % clients.length];
      while (next < tokens.length) {
        const i = next++;
        const t0 = performance.now();
        const res = await certify(client, {
          identity: IDENTITY,
          token: tokens[i],
          certificateSigningRequest: csrs[i % csrs.length],
        });
        latencies.push(performance.now() - t0);
        if (!res.leafPem.startsWith('-----BEGIN CERTIFICATE-----'))
          throw new Error('no leaf in the response');
      }
    }),
  );
  return latencies;
}

const pct = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

const cp = await startControl();
const bundle = await newIdentityApiClient(parseHostPort(cp.api)).trustBundle();
const csrs = await Promise.all(Array.from({ length: CSRS }, async () => (await newCsr(IDENTITY)).csr));
const tokens = await mintTokens(cp.api, COUNT + WARMUP);
const clients = Array.from({ length: CHANNELS }, (_, i) =>
  // A distinct option per client keeps grpc-js from sharing one connection between them.
  identityClient(cp.identity, bundle, 'spiffe://weft.local/ns/weft/sa/identity', undefined, {
    'bench.channel': i,
  }),
);
await run(clients, tokens.slice(0, WARMUP), csrs);
const cpu0 = readCpuSeconds(cp.pid);
const t0 = performance.now();
const latencies = await run(clients, tokens.slice(WARMUP), csrs);
const elapsedS = (performance.now() - t0) / 1000;
const cpuS = readCpuSeconds(cp.pid) - cpu0;
for (const c of clients) c.close();
latencies.sort((a, b) => a - b);
const result = {
  benchmark: 'identity-issuance',
  at: new Date().toISOString(),
  count: COUNT,
  concurrency: CONCURRENCY,
  channels: CHANNELS,
  issuancesPerSecond: Math.round(COUNT / elapsedS),
  latencyMs: {
    p50: pct(latencies, 50),
    p90: pct(latencies, 90),
    p99: pct(latencies, 99),
    max: latencies.at(-1),
  },
  controlPlaneCpuSecondsPerIssuance: cpuS / COUNT,
  /** Issuances one fully busy core of the control plane would sustain (the client shares this machine). */
  capacityPerCoreSecond: Math.round(COUNT / cpuS),
  targetPerSecond: TARGET_PER_S,
  /** 1-minute load average when the run ended: other work on the machine skews the throughput. */
  loadAverage1m: loadavg()[0],
};
const f = (n: number | undefined) => (n ?? 0).toFixed(2);
process.stdout.write(
  [
    '| issuances/s | p50 ms | p90 ms | p99 ms | control-plane CPU ms/issuance | capacity/s per core | load avg | target |',
    '|---|---|---|---|---|---|---|---|',
    `| ${result.issuancesPerSecond} | ${f(result.latencyMs.p50)} | ${f(result.latencyMs.p90)} | ${f(result.latencyMs.p99)} | ${f(result.controlPlaneCpuSecondsPerIssuance * 1000)} | ${result.capacityPerCoreSecond} | ${f(result.loadAverage1m)} | ≥ ${TARGET_PER_S}/s ${result.issuancesPerSecond >= TARGET_PER_S ? 'met' : 'NOT met'} |`,
    '',
  ].join('\n'),
);
const dir = join(REPO_ROOT, 'bench', 'results');
mkdirSync(dir, { recursive: true });
const stamp = result.at.replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
writeFileSync(join(dir, `identity-issuance-${stamp}.json`), `${JSON.stringify(result, null, 2)}\n`);
process.exit(0);
