/**
 * `weft demo` as a person runs it (issue 3): one command starts the control plane, books (two
 * replicas, failing ~10% of requests), authors (gRPC), web and a traffic generator, each through
 * `weft run`. The API lists their workloads, the proxies' metrics show the traffic, including the
 * failures of the flaky service, and SIGTERM stops everything it started and exits 0.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import * as http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { parseHostPort } from '../src/lib/addr.js';
import { newApiClient } from '../src/lib/api-client.js';
import { isProcessAlive } from '../src/lib/process-alive.js';
import { eventually } from './support/eventually.js';
import { WEFT_BIN } from './support/paths.js';
import { sampleSum } from './support/prom-text.js';

interface Member {
  label: string;
  service: string;
  workload: string;
  runPid: number;
  proxyPid: number;
  appPid: number;
  admin: string;
  outbound: string;
}

interface Ready {
  api: string;
  destination: string;
  members: Member[];
}

let dir: string;
let demo: ChildProcess;
let exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
const stdout: string[] = [];
const stderr: string[] = [];
let ready: Ready;

function pidsOf(r: Ready | undefined): number[] {
  return (r?.members ?? []).flatMap((m) => [m.runPid, m.proxyPid, m.appPid]);
}

function fetchText(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`${res.statusCode}`))));
    });
    req.setTimeout(5000, () => req.destroy(new Error('timed out')));
    req.on('error', reject);
  });
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'weft-demo-'));
  demo = spawn(
    process.execPath,
    [WEFT_BIN, 'demo', '--state', dir, '--api-addr', '127.0.0.1:0', '--destination-addr', '127.0.0.1:0'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  exited = new Promise((resolve) => demo.once('exit', (code, signal) => resolve({ code, signal })));
  createInterface({ input: demo.stdout! }).on('line', (l) => stdout.push(l));
  createInterface({ input: demo.stderr! }).on('line', (l) => stderr.push(l));
  ready = await eventually(
    () => {
      const line = stdout.find((l) => l.startsWith('{"msg":"demo ready"'));
      assert.ok(line, `the demo is not ready yet; stderr:\n${stderr.join('\n')}`);
      return JSON.parse(line) as Ready;
    },
    { timeoutMs: 30_000, intervalMs: 100 },
  );
});

after(async () => {
  if (demo.exitCode === null && demo.signalCode === null) demo.kill('SIGKILL');
  await exited;
  for (const pid of pidsOf(ready)) if (isProcessAlive(pid)) process.kill(pid, 'SIGKILL');
  await rm(dir, { recursive: true, force: true });
});

describe('weft demo', () => {
  it('prints what to look at', () => {
    const text = stdout.join('\n');
    assert.match(text, new RegExp(`weft\\.js get workloads .*--api-addr ${ready.api}`));
    assert.match(text, /curl -s -x http:\/\/127\.0\.0\.1:\d+ http:\/\/web:7001\//);
    for (const m of ready.members) assert.ok(text.includes(`http://${m.admin}/metrics`), m.label);
  });

  it('registers books (2 replicas), authors, web and traffic with the control plane', async () => {
    const api = newApiClient(parseHostPort(ready.api));
    const workloads = (await api.list('Workload')).items;
    const count = (service: string) => workloads.filter((w) => w.spec.service === service).length;
    assert.deepEqual(
      { books: count('books'), authors: count('authors'), web: count('web'), traffic: count('traffic') },
      { books: 2, authors: 1, web: 1, traffic: 1 },
    );
  });

  it("shows the traffic, and books' failures, in web's and books' proxies' metrics", async (t) => {
    const web = ready.members.find((m) => m.service === 'web')!;
    const books = ready.members.filter((m) => m.service === 'books');
    const seen = await eventually(
      async () => {
        const w = await fetchText(`http://${web.admin}/metrics`);
        const b = await Promise.all(books.map((m) => fetchText(`http://${m.admin}/metrics`)));
        const toBooks = { direction: 'outbound', authority: 'books:7002' };
        const booksIn = (c: string) =>
          b.reduce(
            (s, text) => s + sampleSum(text, 'response_total', { direction: 'inbound', classification: c }),
            0,
          );
        const r = {
          webInbound: sampleSum(w, 'request_total', { direction: 'inbound', authority: 'web:7001' }),
          webToBooks: sampleSum(w, 'request_total', toBooks),
          webToBooksOk: sampleSum(w, 'response_total', { ...toBooks, classification: 'success' }),
          webToBooksFailed: sampleSum(w, 'response_total', {
            ...toBooks,
            status_code: '500',
            classification: 'failure',
          }),
          webToAuthorsOk: sampleSum(w, 'response_total', {
            direction: 'outbound',
            authority: 'authors:7003',
            grpc_status: '0',
            classification: 'success',
          }),
          webAnsweredFailure: sampleSum(w, 'response_total', {
            direction: 'inbound',
            status_code: '502',
            classification: 'failure',
          }),
          booksOk: booksIn('success'),
          booksFailed: booksIn('failure'),
        };
        for (const [k, v] of Object.entries(r)) assert.ok(v > 0, `${k} is ${v}: ${JSON.stringify(r)}`);
        return r;
      },
      { timeoutMs: 30_000, intervalMs: 500 },
    );
    t.diagnostic(`metrics: ${JSON.stringify(seen)}`);
  });

  it('stops everything it started on SIGTERM and exits 0 within 20 s', async (t) => {
    const pids = pidsOf(ready);
    assert.equal(pids.length, 15, 'five members, three processes each');
    for (const pid of pids) assert.ok(isProcessAlive(pid), `pid ${pid} runs before SIGTERM`);
    const start = performance.now();
    demo.kill('SIGTERM');
    const exit = await Promise.race([
      exited,
      new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 20_000).unref()),
    ]);
    t.diagnostic(`demo stopped in ${(performance.now() - start).toFixed(0)} ms`);
    assert.deepEqual(exit, { code: 0, signal: null }, `stderr:\n${stderr.slice(-20).join('\n')}`);
    assert.deepEqual(
      pids.filter(isProcessAlive),
      [],
      'every weft run, proxy and app the demo started is gone',
    );
  });
});
