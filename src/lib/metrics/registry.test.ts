import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { LATENCY_BUCKETS_MS, MetricsError, Registry } from './registry.js';

const PROMTOOL = '/usr/bin/promtool';

/** Retries `check` until it passes or `timeoutMs` is up (then rethrows its last failure). */
async function eventually(check: () => void, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      check();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function lines(...ls: string[]): string {
  return `${ls.join('\n')}\n`;
}

test('an empty registry and families without children render nothing', () => {
  const r = new Registry();
  r.counter('request_total', 'Requests.');
  r.gauge('tcp_open_connections', 'Open connections.');
  r.histogram('response_latency_ms', 'Latency.', LATENCY_BUCKETS_MS);
  assert.equal(r.render(), '');
});

test('counters render in label insertion order, integral values without a decimal point', () => {
  const r = new Registry();
  const requests = r.counter('request_total', 'Requests received.');
  const a = requests.with({ direction: 'inbound', authority: 'a.svc:80' });
  a.inc();
  requests.with({ direction: 'inbound', authority: 'a.svc:80' }).inc(2);
  requests.with({ direction: 'outbound', authority: 'b.svc:80' }).inc(0.5);
  r.counter('unused_total', 'Never touched.');
  r.counter('plain_total', 'No labels.').with({}).inc(7);
  a.inc(-5); // ignored: counters never go down
  a.inc(Number.NaN);
  assert.equal(
    requests.with({ authority: 'a.svc:80', direction: 'inbound' }),
    a,
    'key order is not identity',
  );
  assert.equal(
    r.render(),
    lines(
      '# HELP request_total Requests received.',
      '# TYPE request_total counter',
      'request_total{direction="inbound",authority="a.svc:80"} 3',
      'request_total{direction="outbound",authority="b.svc:80"} 0.5',
      '# HELP plain_total No labels.',
      '# TYPE plain_total counter',
      'plain_total 7',
    ),
  );
});

test('gauges go up, down and to a set value', () => {
  const r = new Registry();
  const open = r.gauge('tcp_open_connections', 'Open connections.');
  const inbound = open.with({ direction: 'inbound' });
  inbound.inc();
  inbound.inc(3);
  inbound.dec();
  open.with({ direction: 'outbound' }).set(-1.25);
  r.gauge('identity_cert_expiration_timestamp_seconds', 'Expiry.').with({}).set(1700000000);
  assert.equal(
    r.render(),
    lines(
      '# HELP tcp_open_connections Open connections.',
      '# TYPE tcp_open_connections gauge',
      'tcp_open_connections{direction="inbound"} 3',
      'tcp_open_connections{direction="outbound"} -1.25',
      '# HELP identity_cert_expiration_timestamp_seconds Expiry.',
      '# TYPE identity_cert_expiration_timestamp_seconds gauge',
      'identity_cert_expiration_timestamp_seconds 1700000000',
    ),
  );
});

test('histograms render cumulative buckets, +Inf, sum and count', () => {
  const r = new Registry();
  const latency = r.histogram('response_latency_ms', 'Latency.', [1, 5, 10]);
  const h = latency.with({ direction: 'inbound', status_code: '200' });
  for (const v of [0.5, 1, 3, 20, Number.NaN]) h.observe(v);
  latency.with({}).observe(10);
  assert.equal(
    r.render(),
    lines(
      '# HELP response_latency_ms Latency.',
      '# TYPE response_latency_ms histogram',
      'response_latency_ms_bucket{direction="inbound",status_code="200",le="1"} 2',
      'response_latency_ms_bucket{direction="inbound",status_code="200",le="5"} 3',
      'response_latency_ms_bucket{direction="inbound",status_code="200",le="10"} 3',
      'response_latency_ms_bucket{direction="inbound",status_code="200",le="+Inf"} 4',
      'response_latency_ms_sum{direction="inbound",status_code="200"} 24.5',
      'response_latency_ms_count{direction="inbound",status_code="200"} 4',
      'response_latency_ms_bucket{le="1"} 0',
      'response_latency_ms_bucket{le="5"} 0',
      'response_latency_ms_bucket{le="10"} 1',
      'response_latency_ms_bucket{le="+Inf"} 1',
      'response_latency_ms_sum 10',
      'response_latency_ms_count 1',
    ),
  );
  const lastBucket = r.histogram('big_ms', 'b', LATENCY_BUCKETS_MS);
  lastBucket.with({}).observe(60000);
  assert.match(r.render(), /\nbig_ms_bucket\{le="50000"\} 0\nbig_ms_bucket\{le="\+Inf"\} 1\n/);
});

test('label values and help text are escaped', () => {
  const r = new Registry();
  r.counter('response_total', 'Responses, "quoted" \\ and\nsplit.')
    .with({ error: 'back\\slash "quote"\nnewline' })
    .inc();
  assert.equal(
    r.render(),
    lines(
      '# HELP response_total Responses, "quoted" \\\\ and\\nsplit.',
      '# TYPE response_total counter',
      'response_total{error="back\\\\slash \\"quote\\"\\nnewline"} 1',
    ),
  );
});

test('misuse throws coded MetricsErrors', () => {
  const r = new Registry();
  const code = (code: string) => (err: unknown) => err instanceof MetricsError && err.code === code;
  assert.throws(() => r.counter('requests', 'x'), code('WEFT_ERR_METRIC_NAME'));
  assert.throws(() => r.gauge('bad-name', 'x'), code('WEFT_ERR_METRIC_NAME'));
  assert.throws(() => r.histogram('h', 'x', [2, 1]), code('WEFT_ERR_METRIC_BUCKETS'));
  r.histogram('h', 'x', [1, 2]);
  assert.throws(() => r.gauge('h_count', 'x'), code('WEFT_ERR_METRIC_CONFLICT'));
  assert.throws(() => r.gauge('h', 'x'), code('WEFT_ERR_METRIC_CONFLICT'));
  assert.throws(() => r.histogram('h', 'x', [1, 3]), code('WEFT_ERR_METRIC_CONFLICT'));
  assert.throws(() => r.histogram('h', 'x', [1, 2]).with({ le: '1' }), code('WEFT_ERR_METRIC_LABEL'));
  assert.throws(() => r.gauge('g', 'x').with({ 'a-b': '1' }), code('WEFT_ERR_METRIC_LABEL'));
  assert.throws(() => new Registry({ maxSeriesPerFamily: -1 }), code('WEFT_ERR_METRICS_OPTIONS'));
  const total = r.counter('request_total', 'x');
  assert.equal(r.counter('request_total', 'other help'), total, 'registration is idempotent');
});

test('past maxSeriesPerFamily new label sets share an unrendered overflow child and are counted', () => {
  const r = new Registry({ maxSeriesPerFamily: 2 });
  const requests = r.counter('request_total', 'Requests.');
  requests.with({ authority: 'a' }).inc();
  requests.with({ authority: 'b' }).inc();
  const c = requests.with({ authority: 'c' });
  const d = requests.with({ authority: 'd' });
  assert.equal(c, d);
  c.inc(10);
  requests.with({ authority: 'a' }).inc(); // known sets still work when full
  r.gauge('tcp_open_connections', 'Open.').with({}).set(1);
  assert.equal(
    r.render(),
    lines(
      '# HELP request_total Requests.',
      '# TYPE request_total counter',
      'request_total{authority="a"} 2',
      'request_total{authority="b"} 1',
      '# HELP tcp_open_connections Open.',
      '# TYPE tcp_open_connections gauge',
      'tcp_open_connections 1',
      '# HELP weft_metrics_series_dropped_total Label sets not recorded because their family was at its series limit.',
      '# TYPE weft_metrics_series_dropped_total counter',
      'weft_metrics_series_dropped_total{family="request_total"} 2',
    ),
  );
});

test('retireIdle removes idle children but not nonzero gauges; held children come back', async () => {
  const r = new Registry();
  const requests = r.counter('request_total', 'Requests.');
  const open = r.gauge('tcp_open_connections', 'Open.');
  const idle = requests.with({ authority: 'idle' });
  idle.inc();
  const busy = requests.with({ authority: 'busy' });
  open.with({ authority: 'still-open' }).set(2);
  const closed = open.with({ authority: 'closed' });
  closed.set(0);
  assert.equal(r.retireIdle(60_000), 0);
  // The clock ticks once a second: 1.5 s separates "updated before the loop" from "updated in it".
  let retired = 0;
  await eventually(() => {
    busy.inc();
    retired += r.retireIdle(1500);
    assert.equal(retired, 2);
  });
  const busyCount = r.render().match(/authority="busy"\} (\d+)/)?.[1];
  assert.equal(
    r.render(),
    lines(
      '# HELP request_total Requests.',
      '# TYPE request_total counter',
      `request_total{authority="busy"} ${busyCount}`,
      '# HELP tcp_open_connections Open.',
      '# TYPE tcp_open_connections gauge',
      'tcp_open_connections{authority="still-open"} 2',
    ),
  );
  // A retired child still held by a caller rejoins its family, value intact, on its next update.
  idle.inc();
  assert.equal(requests.with({ authority: 'idle' }), idle);
  assert.match(r.render(), /\nrequest_total\{authority="idle"\} 2\n/);
  // If with() made a new child meanwhile, the held one feeds it rather than a duplicate series.
  const fresh = open.with({ authority: 'closed' });
  assert.notEqual(fresh, closed);
  fresh.inc();
  closed.inc();
  assert.match(r.render(), /\ntcp_open_connections\{authority="closed"\} 2\n/);
  assert.equal(r.render().match(/closed/g)?.length, 1);
});

test('render() passes promtool check metrics', (t) => {
  if (!existsSync(PROMTOOL)) {
    t.skip(`${PROMTOOL} not installed`);
    return;
  }
  const r = new Registry({ maxSeriesPerFamily: 3 });
  const requests = r.counter('request_total', 'Total count of HTTP requests.');
  const responses = r.counter('response_total', 'Total count of HTTP responses.');
  const opens = r.counter('tcp_open_total', 'Total count of opened connections.');
  const open = r.gauge('tcp_open_connections', 'Number of currently open connections.');
  const latency = r.histogram('response_latency_ms', 'Elapsed times between a request and its response.', [
    ...LATENCY_BUCKETS_MS,
  ]);
  for (const [i, authority] of ['web.default.svc:80', 'api.default.svc:8080', 'odd "name"\\\n'].entries()) {
    const common = { direction: 'outbound', authority, target_addr: `10.0.0.${i}:80`, tls: 'true' };
    requests.with(common).inc(3);
    responses.with({ ...common, status_code: '200', classification: 'success' }).inc(2);
    responses.with({ ...common, status_code: '502', classification: 'failure', error: 'connect' }).inc();
    opens.with({ direction: 'inbound', peer: 'src', tls: 'no_identity' }).inc();
    open.with({ direction: 'inbound', peer: 'src', tls: 'no_identity' }).set(i);
    for (const ms of [0.4, 7, 120, 65000]) latency.with({ ...common, status_code: '200' }).observe(ms);
  }
  requests.with({ direction: 'outbound', authority: 'overflow' }).inc();
  const result = spawnSync(PROMTOOL, ['check', 'metrics'], { input: r.render(), encoding: 'utf8' });
  const complaints = `${result.stdout}${result.stderr}`.trim();
  if (result.status !== 0) {
    assert.equal(result.status, 3, `promtool failed: ${complaints}`);
    assert.equal(complaints, 'response_latency_ms metric names should not contain abbreviated units');
  }
});
