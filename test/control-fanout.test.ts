/**
 * Destination fan-out with real grpc-js subscribers, each on its own connection: 200 subscribers
 * on 20 services all receive a change within 1 s, and a subscriber that never reads is
 * disconnected (RESOURCE_EXHAUSTED) and counted while the others keep receiving everything.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import http2 from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { type DestinationClient, destinationApi, type Update } from '../proto/destination.js';
import type { RunningControlPlane } from '../src/control/control-plane.js';
import { newLogger } from '../src/lib/log.js';
import { startTestControlPlane } from './support/control-plane.js';
import { eventually } from './support/eventually.js';
import { neverReadingSubscriber } from './support/never-reading-subscriber.js';

const SERVICES = 20;
const SUBSCRIBERS = 200;
/** Small, so that a subscriber that never reads overflows after few (large) updates. */
const MAX_QUEUED = 8;

let dir: string;
let control: RunningControlPlane;
const clients: DestinationClient[] = [];
const logLines: string[] = [];

function newClient(): DestinationClient {
  const c = new (destinationApi().Client)(control.addresses.destination, grpc.credentials.createInsecure(), {
    'grpc.use_local_subchannel_pool': 1, // one connection per subscriber, like separate proxies
  });
  clients.push(c);
  return c;
}

const serviceName = (i: number) => `svc-${i}`;

function workload(name: string, service: string, address: string, labels: Record<string, string> = {}) {
  return {
    apiVersion: 'weft.io/v1alpha1',
    kind: 'Workload',
    metadata: { name, labels },
    spec: { service, address, port: 8080 },
  };
}

/** Addresses added so far on a subscription, with the time each first arrived. */
interface Subscriber {
  readonly call: grpc.ClientReadableStream<Update>;
  readonly seenAt: Map<string, number>;
  messages: number;
}

function subscribe(authority: string): Subscriber {
  const call = newClient().Get({ authority, contextToken: '' });
  const sub: Subscriber = { call, seenAt: new Map(), messages: 0 };
  call.on('data', (u: Update) => {
    sub.messages++;
    if (u.update === 'add')
      for (const a of u.add.addrs) if (!sub.seenAt.has(a.addr)) sub.seenAt.set(a.addr, performance.now());
  });
  call.on('error', () => {});
  return sub;
}

const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'weft-fanout-'));
  control = await startTestControlPlane({
    stateDir: dir,
    log: newLogger('info', {}, (l) => logLines.push(l)),
    env: { WEFT_CONTROL_DESTINATION_MAX_QUEUED_UPDATES: String(MAX_QUEUED) },
  });
  for (let i = 0; i < SERVICES; i++) {
    await control.store.apply({
      apiVersion: 'weft.io/v1alpha1',
      kind: 'Service',
      metadata: { name: serviceName(i) },
      spec: { ports: [{ port: 8080 }] },
    });
  }
});

after(async () => {
  for (const c of clients) c.close();
  await control.shutdown();
  await rm(dir, { recursive: true, force: true });
});

describe('destination fan-out', () => {
  it(`delivers a change to each of ${SUBSCRIBERS} subscribers on ${SERVICES} services within 1 s`, async (t) => {
    // Three names per service, as clients spell them.
    const forms = (s: string) => [`${s}:8080`, `${s}.default:8080`, `${s}.default.svc.cluster.local:8080`];
    const subs = Array.from({ length: SUBSCRIBERS }, (_, i) => ({
      service: i % SERVICES,
      sub: subscribe(forms(serviceName(i % SERVICES))[i % 3]),
    }));
    await eventually(() => assert.equal(control.destination.stats().streams, SUBSCRIBERS));
    await eventually(() =>
      assert.ok(
        subs.every((s) => s.sub.messages >= 1),
        'every snapshot arrived',
      ),
    );

    // One change per service, each timed from just before its write.
    const startedAt: number[] = [];
    for (let i = 0; i < SERVICES; i++) {
      startedAt[i] = performance.now();
      await control.store.apply(workload(`w-${i}`, serviceName(i), `10.0.0.${i + 1}`));
    }
    const delays = await eventually(() =>
      subs.map(({ service, sub }) => {
        const at = sub.seenAt.get(`10.0.0.${service + 1}:8080`);
        assert.ok(at !== undefined, `a subscriber of ${serviceName(service)} has not seen its change`);
        return at - startedAt[service];
      }),
    );
    delays.sort((a, b) => a - b);
    const [p50, p99, max] = [percentile(delays, 0.5), percentile(delays, 0.99), delays.at(-1) as number];
    t.diagnostic(
      `propagation to ${SUBSCRIBERS} subscribers: p50 ${p50.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms, max ${max.toFixed(1)} ms`,
    );
    assert.ok(max < 1000, `slowest subscriber saw its change after ${max} ms`);
    for (const { sub } of subs) sub.call.cancel();
    await eventually(() => assert.equal(control.destination.stats().streams, 0));
  });

  it('disconnects and counts a subscriber that never reads; the others keep receiving', async () => {
    const authority = 'slow-target:8080';
    await control.store.apply({
      apiVersion: 'weft.io/v1alpha1',
      kind: 'Service',
      metadata: { name: 'slow-target' },
      spec: { ports: [{ port: 8080 }] },
    });
    const fast = subscribe(authority);
    const slow = neverReadingSubscriber(control.addresses.destination, authority);
    await eventually(() => assert.equal(control.destination.stats().streams, 2));
    const before = control.destination.stats().slowSubscribersDisconnected;

    // Large updates fill the HTTP/2 window and grpc-js's buffer quickly; then the queue overflows.
    const padding = 'x'.repeat(16 * 1024);
    let changes = 0;
    while (control.destination.stats().slowSubscribersDisconnected === before) {
      assert.ok(changes < 200, 'the slow subscriber was never disconnected');
      await control.store.apply(
        workload('slow-0', 'slow-target', '10.1.0.1', { pad: padding, n: String(changes++) }),
      );
    }
    assert.equal(control.destination.stats().slowSubscribersDisconnected, before + 1);
    assert.equal(control.destination.stats().streams, 1, 'only the fast subscriber is left');
    assert.ok(logLines.some((l) => l.includes('slow subscriber disconnected')));

    // The fast one kept receiving everything, and still does.
    await control.store.apply(workload('slow-1', 'slow-target', '10.1.0.2'));
    await eventually(() => assert.ok(fast.seenAt.has('10.1.0.2:8080')));
    assert.equal(fast.messages, changes + 2, 'the snapshot and every change');

    // The slow one's stream was reset with ENHANCE_YOUR_CALM (RESOURCE_EXHAUSTED to gRPC clients).
    slow.req.resume();
    await new Promise((resolve) => (slow.req.closed ? resolve(undefined) : slow.req.once('close', resolve)));
    assert.equal(slow.req.rstCode, http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    slow.session.close();
    fast.call.cancel();
  });
});
