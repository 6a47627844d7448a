/**
 * Golden metrics (DESIGN.md §9): after a known mix of requests through outbound → inbound, both
 * proxies' counters and histograms equal exactly what was sent; `promtool check metrics` accepts
 * the exposition; and a real Prometheus scrapes and stores it.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LATENCY_BUCKETS_MS } from '../src/lib/metrics/registry.js';
import {
  grpcClient,
  type HttpApp,
  startGrpcApp,
  startHttpApp,
  type TestServer,
  unaryCall,
} from './support/apps.js';
import { curl } from './support/curl.js';
import { eventually } from './support/eventually.js';
import { promtoolCheckMetrics } from './support/promtool.js';
import { type ProxyProcess, startProxy, writeDestinationsFile } from './support/proxy-process.js';

type Labels = Record<string, string>;
interface Sample {
  name: string;
  labels: Labels;
  value: number;
}

/** Parses a text exposition into samples (comments skipped, label values unescaped). */
function parseExposition(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `unparsable sample line: ${line}`);
    const labels: Labels = {};
    for (const [, k, v] of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[k] = v.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    }
    const value = m[3] === '+Inf' ? Number.POSITIVE_INFINITY : Number(m[3]);
    out.push({ name: m[1], labels, value });
  }
  return out;
}

const sameLabels = (a: Labels, b: Labels) =>
  Object.keys(a).length === Object.keys(b).length && Object.entries(a).every(([k, v]) => b[k] === v);

/** Every sample of `name` whose labels include `subset`, as "labels → value" for readable diffs. */
function table(samples: Sample[], name: string, subset: Labels = {}): Map<string, number> {
  const out = new Map<string, number>();
  for (const s of samples) {
    if (s.name !== name || !Object.entries(subset).every(([k, v]) => s.labels[k] === v)) continue;
    out.set(labelKey(s.labels), s.value);
  }
  return out;
}

function labelKey(labels: Labels): string {
  return Object.keys(labels)
    .sort()
    .map((k) => `${k}=${labels[k]}`)
    .join(',');
}

function value(samples: Sample[], name: string, labels: Labels): number | undefined {
  return samples.find((s) => s.name === name && sameLabels(s.labels, labels))?.value;
}

/** A port free right now on 127.0.0.1 (for programs that cannot be told to pick one). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Waits until `check` passes (counters settle a moment after clients finish); on timeout, runs it
 * once more so the failure shows the real difference rather than the timeout.
 */
async function settled(check: () => Promise<void>, timeoutMs = 15_000): Promise<void> {
  try {
    await eventually(check, { timeoutMs, intervalMs: 100 });
  } catch {
    await check();
  }
}

/** The only lint promtool may raise: the name Linkerd dashboards require. */
const ALLOWED_LINT = 'response_latency_ms metric names should not contain abbreviated units';

describe('metrics after a known mix of requests', () => {
  let httpApp: HttpApp;
  let grpcApp: TestServer;
  let inHttp: ProxyProcess;
  let inGrpc: ProxyProcess;
  let outbound: ProxyProcess;
  let dir: string;
  let prometheus: ChildProcess | undefined;
  let curlConnections = 0;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'weft-metrics-'));
    [httpApp, grpcApp] = await Promise.all([startHttpApp(), startGrpcApp()]);
    [inHttp, inGrpc] = await Promise.all([
      startProxy({ args: ['--app-port', String(httpApp.port), '--outbound-listen-addr', 'none'] }),
      startProxy({ args: ['--app-port', String(grpcApp.port), '--outbound-listen-addr', 'none'] }),
    ]);
    const destinations = join(dir, 'destinations.yaml');
    await writeDestinationsFile(destinations, [
      {
        authority: 'books:7002',
        endpoints: [{ address: inHttp.inbound!, meshed: true, labels: { pod: 'books-0' } }],
      },
      {
        authority: 'echo:50051',
        endpoints: [{ address: inGrpc.inbound!, meshed: true, labels: { pod: 'echo-0' } }],
      },
      { authority: 'empty:80', endpoints: [] },
    ]);
    outbound = await startProxy({
      args: ['--destinations', destinations, '--inbound-listen-addr', 'none'],
    });
  });

  after(async () => {
    if (prometheus && prometheus.exitCode === null && prometheus.signalCode === null) {
      const exited = new Promise((r) => prometheus!.once('exit', r));
      prometheus.kill('SIGTERM');
      const timer = setTimeout(() => prometheus!.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    await Promise.all([outbound?.stop(), inHttp?.stop(), inGrpc?.stop()]);
    await Promise.all([httpApp?.close(), grpcApp?.close()]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** curl through the outbound listener; returns the `-w` output lines. */
  async function viaOutbound(args: string[]): Promise<string[]> {
    curlConnections++;
    const r = await curl(['--max-time', '10', '-w', '%{http_code} %{num_connects}\\n', ...args]);
    assert.equal(r.code, 0, `curl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout.trim().split('\n');
  }

  it('sends the mix and gets the expected answers', async () => {
    const out = `http://${outbound.outbound}`;
    const books = ['-H', 'Host: books:7002'];
    // 7 GETs on one keep-alive connection.
    const gets = await viaOutbound([
      ...books,
      ...Array.from({ length: 7 }, (_, i) => [`${out}/get/${i}`, '-o', '/dev/null']).flat(),
    ]);
    assert.deepEqual(gets, ['200 1', '200 0', '200 0', '200 0', '200 0', '200 0', '200 0']);
    for (let i = 0; i < 3; i++) {
      assert.deepEqual(
        await viaOutbound([...books, '-d', `body ${i}`, '-o', '/dev/null', `${out}/post/${i}`]),
        ['200 1'],
      );
    }
    for (let i = 0; i < 2; i++) {
      assert.deepEqual(await viaOutbound([...books, '-o', '/dev/null', `${out}/status/500`]), ['500 1']);
    }
    assert.deepEqual(await viaOutbound([...books, '-o', '/dev/null', `${out}/status/404`]), ['404 1']);
    for (let i = 0; i < 2; i++) {
      const r = await curl([
        '--max-time',
        '10',
        '-D',
        '-',
        '-o',
        '/dev/null',
        '-H',
        'Host: empty',
        `${out}/`,
      ]);
      curlConnections++;
      assert.match(r.stdout, /^HTTP\/1\.1 503 /);
      assert.match(r.stdout, /^weft-proxy-error: no endpoints\r$/m);
    }
    assert.deepEqual(
      await viaOutbound(['--http2-prior-knowledge', ...books, '-o', '/dev/null', `${out}/h2c`]),
      ['200 1'],
    );

    const client = grpcClient(outbound.outbound!, {
      channelOptions: { 'grpc.default_authority': 'echo:50051' },
    });
    try {
      for (let i = 0; i < 3; i++) {
        const ok = await unaryCall(client, { message: `m${i}` }, { deadlineMs: 10_000 });
        assert.equal(ok.status.code, 0, ok.status.details);
        assert.equal(ok.replies[0]?.message, `m${i}`);
      }
      for (let i = 0; i < 2; i++) {
        const failed = await unaryCall(client, { failCode: 5 }, { deadlineMs: 10_000 });
        assert.equal(failed.status.code, 5, failed.status.details);
      }
    } finally {
      client.close();
    }
  });

  it('counts requests and responses exactly, on both sides', async () => {
    const booksOut = {
      direction: 'outbound',
      authority: 'books:7002',
      target_addr: inHttp.inbound!,
      tls: 'false',
      dst_pod: 'books-0',
    };
    const echoOut = {
      direction: 'outbound',
      authority: 'echo:50051',
      target_addr: inGrpc.inbound!,
      tls: 'false',
      dst_pod: 'echo-0',
    };
    const emptyOut = { direction: 'outbound', authority: 'empty:80', target_addr: '', tls: 'false' };
    const booksIn = {
      direction: 'inbound',
      authority: 'books:7002',
      target_addr: `127.0.0.1:${httpApp.port}`,
      tls: 'false',
    };
    const echoIn = {
      direction: 'inbound',
      authority: 'echo:50051',
      target_addr: `127.0.0.1:${grpcApp.port}`,
      tls: 'false',
    };
    const http = (base: Labels) => ({
      [labelKey({ ...base, status_code: '200', classification: 'success' })]: 11,
      [labelKey({ ...base, status_code: '500', classification: 'failure' })]: 2,
      [labelKey({ ...base, status_code: '404', classification: 'success' })]: 1,
    });
    const grpc = (base: Labels) => ({
      [labelKey({ ...base, status_code: '200', classification: 'success', grpc_status: '0' })]: 3,
      [labelKey({ ...base, status_code: '200', classification: 'failure', grpc_status: '5' })]: 2,
    });

    // Responses are counted when the proxy has written their last byte, which can be just after
    // the client has read it: wait for the final values rather than sampling once.
    await settled(async () => {
      const outs = parseExposition(await outbound.metrics());
      assert.deepEqual(Object.fromEntries(table(outs, 'request_total')), {
        [labelKey(booksOut)]: 14,
        [labelKey(echoOut)]: 5,
        [labelKey(emptyOut)]: 2,
      });
      assert.deepEqual(Object.fromEntries(table(outs, 'response_total')), {
        ...http(booksOut),
        ...grpc(echoOut),
        [labelKey({
          ...emptyOut,
          status_code: '503',
          classification: 'failure',
          error: 'no endpoints',
        })]: 2,
      });
      const insHttp = parseExposition(await inHttp.metrics());
      assert.deepEqual(Object.fromEntries(table(insHttp, 'request_total')), { [labelKey(booksIn)]: 14 });
      assert.deepEqual(Object.fromEntries(table(insHttp, 'response_total')), http(booksIn));
      const insGrpc = parseExposition(await inGrpc.metrics());
      assert.deepEqual(Object.fromEntries(table(insGrpc, 'request_total')), { [labelKey(echoIn)]: 5 });
      assert.deepEqual(Object.fromEntries(table(insGrpc, 'response_total')), grpc(echoIn));
    });
  });

  it('has one latency observation per response, in cumulative, monotone buckets', async () => {
    for (const proxy of [outbound, inHttp, inGrpc]) {
      const samples = parseExposition(await proxy.metrics());
      // Responses per (series, status_code): what each latency histogram must have counted.
      const expected = new Map<string, number>();
      for (const s of samples.filter((x) => x.name === 'response_total')) {
        const { classification: _c, grpc_status: _g, error: _e, ...base } = s.labels;
        expected.set(labelKey(base), (expected.get(labelKey(base)) ?? 0) + s.value);
      }
      const counts = table(samples, 'response_latency_ms_count');
      assert.deepEqual(Object.fromEntries(counts), Object.fromEntries(expected));

      for (const [key, count] of counts) {
        const buckets = samples.filter(
          (s) => s.name === 'response_latency_ms_bucket' && labelKey(withoutLe(s.labels)) === key,
        );
        assert.deepEqual(
          buckets.map((b) => b.labels.le),
          [...LATENCY_BUCKETS_MS.map(String), '+Inf'],
          'bucket bounds in order',
        );
        for (let i = 1; i < buckets.length; i++) {
          assert.ok(
            buckets[i].value >= buckets[i - 1].value,
            `${key}: bucket ${buckets[i].labels.le} decreases`,
          );
        }
        assert.equal(buckets.at(-1)!.value, count, `${key}: +Inf bucket equals the count`);
        const sum = table(samples, 'response_latency_ms_sum').get(key);
        assert.ok(sum !== undefined && sum >= 0 && Number.isFinite(sum), `${key}: sum ${sum}`);
      }
    }
  });

  it('keeps the connection gauges consistent with opens and closes, and counts bytes', async () => {
    const src = { direction: 'outbound', peer: 'src', target_addr: '', tls: 'false' };
    // curl runs (one connection each) and one gRPC channel; all closed by now or soon.
    const accepted = curlConnections + 1;
    await settled(async () => {
      const samples = parseExposition(await outbound.metrics());
      assert.equal(value(samples, 'tcp_open_total', src), accepted);
      const closes = [...table(samples, 'tcp_close_total', src).values()].reduce((a, b) => a + b, 0);
      assert.equal(closes, accepted);
      assert.equal(value(samples, 'tcp_open_connections', src), 0);
      assert.deepEqual(
        Object.fromEntries(table(samples, 'protocol_detect_total', { direction: 'outbound' })),
        {
          [labelKey({ direction: 'outbound', result: 'http/1' })]: accepted - 2,
          [labelKey({ direction: 'outbound', result: 'http/2' })]: 2,
        },
      );
    });
    for (const proxy of [outbound, inHttp, inGrpc]) {
      const samples = parseExposition(await proxy.metrics());
      const opens = table(samples, 'tcp_open_total');
      assert.ok(opens.size > 0, 'some connection series');
      for (const [key, opened] of opens) {
        const labels = Object.fromEntries(key.split(',').map((kv) => kv.split('=', 2))) as Labels;
        const closed = [...table(samples, 'tcp_close_total', labels).values()].reduce((a, b) => a + b, 0);
        const open = value(samples, 'tcp_open_connections', labels);
        assert.equal(open, opened - closed, `${key}: open = opened - closed`);
        assert.ok(opened > 0);
        assert.ok(
          (value(samples, 'tcp_read_bytes_total', labels) ?? 0) > 0 || closed === 0,
          `${key}: bytes read`,
        );
        assert.ok(
          (value(samples, 'tcp_write_bytes_total', labels) ?? 0) > 0 || closed === 0,
          `${key}: bytes written`,
        );
      }
    }
  });

  it('passes promtool check metrics (only the Linkerd latency name may be linted)', async () => {
    for (const proxy of [outbound, inHttp, inGrpc]) {
      const { code, lines } = await promtoolCheckMetrics(await proxy.metrics());
      if (code === 0) continue;
      assert.equal(code, 3, `promtool exit ${code}:\n${lines.join('\n')}`);
      assert.deepEqual(lines, [ALLOWED_LINT]);
    }
  });

  it('is scraped and stored by a real Prometheus', async () => {
    const port = await freePort();
    const config = join(dir, 'prometheus.yml');
    await writeFile(
      config,
      [
        'global:',
        '  scrape_interval: 1s',
        '  evaluation_interval: 1s',
        'scrape_configs:',
        '  - job_name: weft',
        '    scrape_interval: 1s',
        '    scrape_timeout: 1s',
        '    static_configs:',
        `      - targets: ['${outbound.admin}', '${inHttp.admin}']`,
        '',
      ].join('\n'),
    );
    const logs: string[] = [];
    prometheus = spawn(
      '/usr/bin/prometheus',
      [
        `--config.file=${config}`,
        `--storage.tsdb.path=${join(dir, 'tsdb')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--log.level=warn',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    prometheus.stderr!.on('data', (c) => logs.push(String(c)));
    const query = async (q: string) => {
      const res = await fetch(`http://127.0.0.1:${port}/api/v1/query?query=${encodeURIComponent(q)}`);
      const body = (await res.json()) as {
        status: string;
        data: { result: Array<{ metric: Labels; value: [number, string] }> };
      };
      assert.equal(body.status, 'success');
      return body.data.result;
    };
    // Prometheus is up at once, but its first scrape can come several seconds later.
    const result = await eventually(
      async () => {
        assert.equal(prometheus!.exitCode, null, `prometheus exited:\n${logs.join('')}`);
        const r = await query('request_total');
        assert.ok(r.length >= 4, `request_total series stored: ${JSON.stringify(r)}`);
        return r;
      },
      { timeoutMs: 30_000, intervalMs: 250 },
    );
    const books = result.find(
      (s) => s.metric.direction === 'outbound' && s.metric.authority === 'books:7002',
    );
    assert.ok(books, JSON.stringify(result));
    assert.equal(books.value[1], '14');
    assert.equal(books.metric.job, 'weft');
    assert.equal(books.metric.instance, outbound.admin);
    const inbound = result.find(
      (s) => s.metric.direction === 'inbound' && s.metric.authority === 'books:7002',
    );
    assert.equal(inbound?.value[1], '14');
    const latency = await query('sum(response_latency_ms_count{direction="outbound"})');
    assert.equal(latency[0]?.value[1], '21');
    const up = await query('up{job="weft"}');
    assert.deepEqual(
      up.map((s) => s.value[1]),
      ['1', '1'],
    );
  });
});

function withoutLe(labels: Labels): Labels {
  const { le: _le, ...rest } = labels;
  return rest;
}
