/**
 * The control plane's own metrics (issue 3): a real control plane (in this process, real sockets)
 * serves Prometheus text at GET /metrics on its API port; with a real Destination subscriber open
 * the stream gauge and update counters move as Workloads are applied and the stream closes, the
 * store's writes and resourceVersion follow the writes, process metrics are present, and
 * `promtool check metrics` accepts the exposition without a single lint; a subscriber that never
 * reads is cut off and counted.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { type DestinationClient, destinationApi, type Update } from '../proto/destination.js';
import type { RunningControlPlane } from '../src/control/control-plane.js';
import { newLogger } from '../src/lib/log.js';
import { startTestControlPlane } from './support/control-plane.js';
import { eventually } from './support/eventually.js';
import { certify, identityClient, newCsr } from './support/identity.js';
import { neverReadingSubscriber } from './support/never-reading-subscriber.js';
import { sampleSum } from './support/prom-text.js';
import { promtoolCheckMetrics } from './support/promtool.js';

let dir: string;
let cp: RunningControlPlane;
let destination: DestinationClient;

/** GET `path` on the control plane's API port: status, content type and body. */
function fetchApi(path: string, method = 'GET'): Promise<{ status: number; type: string; body: string }> {
  const [host, port] = cp.addresses.api.split(':');
  return new Promise((resolve, reject) => {
    const req = http.request({ host, port: Number(port), path, method, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }),
      );
    });
    req.setTimeout(5000, () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end();
  });
}

const streamsOpen = (t: string) => sampleSum(t, 'weft_control_destination_streams', { method: 'Get' });

async function scrape(): Promise<string> {
  const r = await fetchApi('/metrics');
  assert.equal(r.status, 200);
  return r.body;
}

const workload = (name: string, port: number) => ({
  apiVersion: 'weft.io/v1alpha1',
  kind: 'Workload',
  metadata: { name, namespace: 'default' },
  spec: { service: 'books', address: '127.0.0.1', port },
});

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'weft-control-metrics-'));
  cp = await startTestControlPlane({
    stateDir: dir,
    log: newLogger('error', {}, () => {}),
    // Small, so that a subscriber that never reads overflows after a few (large) updates.
    env: { WEFT_CONTROL_DESTINATION_MAX_QUEUED_UPDATES: '8' },
  });
  destination = new (destinationApi().Client)(cp.addresses.destination, grpc.credentials.createInsecure());
});

after(async () => {
  destination?.close();
  await cp?.shutdown();
  await rm(dir, { recursive: true, force: true });
});

describe('control plane /metrics', () => {
  it('serves Prometheus text that follows subscribers, updates and store writes, and passes promtool', async () => {
    await cp.store.apply({
      apiVersion: 'weft.io/v1alpha1',
      kind: 'Service',
      metadata: { name: 'books', namespace: 'default' },
      spec: { ports: [{ port: 7002 }] },
    });
    const first = await fetchApi('/metrics');
    assert.equal(first.status, 200);
    assert.match(first.type, /^text\/plain; version=0\.0\.4/);
    const t0 = first.body;
    const streams = streamsOpen;
    const updates = (t: string) => sampleSum(t, 'weft_control_destination_updates_total', { method: 'Get' });
    const writes = (t: string) => sampleSum(t, 'weft_control_store_writes_total', { kind: 'Workload' });
    const rv = (t: string) => sampleSum(t, 'weft_control_store_resource_version', {});
    const known = (t: string) => sampleSum(t, 'weft_control_workloads_known', {});
    assert.equal(streams(t0), 0);
    assert.equal(known(t0), 0);
    assert.ok(sampleSum(t0, 'weft_control_store_writes_total', { kind: 'Service', op: 'apply' }) >= 1);
    assert.ok(sampleSum(t0, 'process_resident_memory_bytes', {}) > 10 * 1024 * 1024, 'RSS is reported');
    assert.ok(sampleSum(t0, 'process_cpu_seconds_total', {}) > 0, 'CPU time is reported');
    assert.ok(sampleSum(t0, 'process_start_time_seconds', {}) > 1.7e9);

    // A real subscriber: the stream gauge goes to 1 and its snapshot counts as one update.
    const seen: Update[] = [];
    const call = destination.Get({ authority: 'books.default.svc.cluster.local:7002', contextToken: '' });
    call.on('data', (u: Update) => seen.push(u));
    call.on('error', () => {});
    try {
      const t1 = await eventually(async () => {
        const t = await scrape();
        assert.equal(streams(t), 1);
        assert.ok(seen.length >= 1, 'the snapshot arrived');
        return t;
      });
      const updatesBefore = updates(t1);
      assert.ok(updatesBefore >= 1);

      await cp.store.apply(workload('books-a', 7101));
      await cp.store.apply(workload('books-b', 7102));
      await cp.store.apply(workload('books-b', 7102)); // unchanged: not a write
      const t2 = await eventually(async () => {
        const t = await scrape();
        assert.equal(updates(t), updatesBefore + 2, 'one update per added endpoint');
        return t;
      });
      assert.equal(writes(t2) - writes(t1), 2);
      assert.equal(rv(t2) - rv(t1), 2);
      assert.equal(known(t2), 2);
      assert.equal(sampleSum(t2, 'weft_control_workloads_probed', {}), 0, 'no adminAddress: not probed');

      await cp.store.delete('Workload', 'default', 'books-a');
      const t3 = await eventually(async () => {
        const t = await scrape();
        assert.equal(updates(t), updatesBefore + 3);
        return t;
      });
      assert.equal(sampleSum(t3, 'weft_control_store_writes_total', { kind: 'Workload', op: 'delete' }), 1);
      assert.equal(known(t3), 1);

      const { code, lines } = await promtoolCheckMetrics(t3);
      assert.equal(code, 0, `promtool check metrics exit ${code}:\n${lines.join('\n')}`);
    } finally {
      call.cancel();
    }
    await eventually(async () => assert.equal(streams(await scrape()), 0, 'the closed stream is gone'));
  });

  it('follows Certify outcomes, unused tokens and certificate expiry', async () => {
    const books = 'spiffe://weft.local/ns/default/sa/books';
    const certifyCount = (t: string, result: string) =>
      sampleSum(t, 'weft_control_identity_certify_total', { result });
    const tokens = (t: string) => sampleSum(t, 'weft_control_identity_tokens_outstanding', {});
    const t0 = await scrape();
    const ok0 = certifyCount(t0, 'ok');
    const { token } = cp.identity.tokens.mint(books);
    const t1 = await scrape();
    assert.equal(tokens(t1), tokens(t0) + 1);

    const anchorsPem = cp.identity.ca.bundle().anchorPems.join('');
    const client = identityClient(
      cp.addresses.identity,
      anchorsPem,
      'spiffe://weft.local/ns/weft/sa/identity',
    );
    try {
      await certify(client, { identity: books, token, certificateSigningRequest: (await newCsr(books)).csr });
      const refused = certify(client, {
        identity: books,
        token: 'not-a-token',
        certificateSigningRequest: (await newCsr(books)).csr,
      });
      await assert.rejects(refused, { code: grpc.status.UNAUTHENTICATED });
    } finally {
      client.close();
    }
    const t2 = await scrape();
    assert.equal(certifyCount(t2, 'ok'), ok0 + 1);
    assert.equal(certifyCount(t2, 'UNAUTHENTICATED'), 1);
    assert.equal(tokens(t2), tokens(t0), 'the token was spent');
    const status = cp.identity.ca.status();
    assert.equal(
      sampleSum(t2, 'weft_control_identity_issuer_expiration_timestamp_seconds', {}),
      Date.parse(status.issuer.notAfter) / 1000,
    );
    assert.equal(sampleSum(t2, 'weft_control_identity_anchors', {}), status.anchors.length);
    assert.equal(
      sampleSum(t2, 'weft_control_identity_anchors_expiration_timestamp_seconds', {}),
      Math.min(...status.anchors.map((a) => Date.parse(a.notAfter) / 1000)),
    );
    const { code, lines } = await promtoolCheckMetrics(t2);
    assert.equal(code, 0, `promtool check metrics exit ${code}:\n${lines.join('\n')}`);
  });

  it('counts a subscriber disconnected for falling behind', async () => {
    await cp.store.apply({
      apiVersion: 'weft.io/v1alpha1',
      kind: 'Service',
      metadata: { name: 'slow-target', namespace: 'default' },
      spec: { ports: [{ port: 8080 }] },
    });
    const slowCount = async () =>
      sampleSum(await scrape(), 'weft_control_destination_slow_subscribers_disconnected_total', {});
    assert.equal(await slowCount(), 0);
    const slow = neverReadingSubscriber(cp.addresses.destination, 'slow-target:8080');
    try {
      await eventually(async () => assert.equal(streamsOpen(await scrape()), 1));
      // Large updates fill the HTTP/2 window and grpc-js's buffer quickly; then the queue overflows.
      const padding = 'x'.repeat(16 * 1024);
      for (let n = 0; cp.destination.stats().slowSubscribersDisconnected === 0; n++) {
        assert.ok(n < 200, 'the slow subscriber was never disconnected');
        await cp.store.apply({
          apiVersion: 'weft.io/v1alpha1',
          kind: 'Workload',
          metadata: { name: 'slow-0', namespace: 'default', labels: { pad: padding, n: String(n) } },
          spec: { service: 'slow-target', address: '127.0.0.1', port: 7301 },
        });
      }
      assert.equal(await slowCount(), 1);
      await eventually(async () => assert.equal(streamsOpen(await scrape()), 0));
    } finally {
      slow.close();
    }
  });

  it('answers HEAD, and refuses other methods with 405', async () => {
    const head = await fetchApi('/metrics', 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(head.body, '');
    const post = await fetchApi('/metrics', 'POST');
    assert.equal(post.status, 405);
  });
});
