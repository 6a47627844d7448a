import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { ConnectError, PeerError, ResponseTimeoutError } from '../../lib/errors.js';
import type { Endpoint } from '../discovery/discovery.js';
import type { Send, SendHooks, UpstreamResponse } from '../http/exchange.js';
import { balancedSend, EndpointBalancer, type EndpointBalancerOptions } from './endpoint-balancer.js';
import { DEFAULT_FAILURE_ACCRUAL } from './failure-accrual.js';

const ep = (addr: string, weight = 1): Endpoint => ({
  addr,
  host: '127.0.0.1',
  port: 1,
  meshed: false,
  weight,
  labels: {},
});

/** mulberry32: a small seeded PRNG, so every run sees the same draws. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function newClock() {
  const clock = { nowMs: 0 };
  return { clock, now: () => clock.nowMs };
}

function newBalancer(opts: Partial<EndpointBalancerOptions> = {}) {
  const { clock, now } = newClock();
  return { clock, balancer: new EndpointBalancer({ now, random: seeded(1), ...opts }) };
}

/**
 * Closed-loop simulation on a virtual clock: `concurrency` clients each send a request, wait for
 * its response, and send the next. Latency per endpoint, ±20% jitter. Returns picks per address.
 */
function simulate(latencyMs: Record<string, number>, requests: number, concurrency: number, seed: number) {
  const random = seeded(seed);
  const { clock, now } = newClock();
  const balancer = new EndpointBalancer({ now, random });
  const endpoints = Object.keys(latencyMs).map((a) => ep(a));
  const counts: Record<string, number> = Object.fromEntries(endpoints.map((e) => [e.addr, 0]));
  const inFlight: Array<{ atMs: number; done: () => void }> = [];
  const send = () => {
    const e = balancer.pick(endpoints)!;
    counts[e.addr]++;
    const request = balancer.start(e);
    const atMs = clock.nowMs + latencyMs[e.addr] * (0.8 + 0.4 * random());
    inFlight.push({
      atMs,
      done: () => {
        request.responded();
        request.end();
      },
    });
  };
  let sent = 0;
  for (; sent < concurrency; sent++) send();
  while (inFlight.length > 0) {
    inFlight.sort((a, b) => a.atMs - b.atMs);
    const next = inFlight.shift()!;
    clock.nowMs = next.atMs;
    next.done();
    if (sent++ < requests) send();
  }
  return counts;
}

test('P2C over peak-EWMA: an endpoint 10x slower gets under 10% of requests', () => {
  for (const seed of [1, 2, 3]) {
    for (const concurrency of [1, 4, 16]) {
      const counts = simulate({ a: 2, b: 2, slow: 20 }, 3000, concurrency, seed);
      const share = counts.slow / 3000;
      assert.ok(share < 0.1, `seed ${seed}, concurrency ${concurrency}: ${JSON.stringify(counts)}`);
    }
  }
});

test('P2C over peak-EWMA: three equal endpoints each get a third, ±15%', () => {
  for (const seed of [1, 2, 3]) {
    for (const concurrency of [1, 4, 16]) {
      const counts = simulate({ a: 5, b: 5, c: 5 }, 3000, concurrency, seed);
      for (const n of Object.values(counts)) {
        assert.ok(
          Math.abs(n - 1000) <= 150,
          `seed ${seed}, concurrency ${concurrency}: ${JSON.stringify(counts)}`,
        );
      }
    }
  }
});

test('weights scale the cost: weight 0 is never picked, a lone weight-0 endpoint means none', () => {
  const { balancer } = newBalancer();
  assert.equal(balancer.pick([]), undefined);
  assert.equal(balancer.pick([ep('z', 0)]), undefined);
  for (let i = 0; i < 100; i++) assert.equal(balancer.pick([ep('z', 0), ep('a')])!.addr, 'a');
});

test('pending requests raise the cost: the idle endpoint is preferred', () => {
  const { balancer } = newBalancer();
  const [x, y] = [ep('x'), ep('y')];
  const r = balancer.start(x);
  for (let i = 0; i < 50; i++) assert.equal(balancer.pick([x, y]), y);
  r.end();
  r.end(); // idempotent
  const seen = new Set<string>();
  for (let i = 0; i < 100; i++) seen.add(balancer.pick([x, y])!.addr);
  assert.deepEqual([...seen].sort(), ['x', 'y']);
});

function fail(balancer: EndpointBalancer, e: Endpoint, times: number) {
  for (let i = 0; i < times; i++) {
    const r = balancer.start(e);
    r.failed();
    r.end();
  }
}

test('an endpoint in the penalty box is skipped; all in the box means no endpoint', () => {
  const { clock, balancer } = newBalancer({ random: () => 0.5 }); // backoff exactly 1 s
  const [a, b] = [ep('a'), ep('b')];
  fail(balancer, a, 7);
  for (let i = 0; i < 20; i++) assert.equal(balancer.pick([a, b]), b);
  fail(balancer, b, 7);
  assert.equal(balancer.pick([a, b]), undefined);
  clock.nowMs = 999;
  assert.equal(balancer.pick([a, b]), undefined);
  // Both backoffs are over: one probe each, then nothing until a probe answers.
  clock.nowMs = 1000;
  const probes = [balancer.pick([a, b]), balancer.pick([a, b])].map((e) => e?.addr);
  assert.deepEqual(probes.sort(), ['a', 'b']);
  assert.equal(balancer.pick([a, b]), undefined);
  const probe = balancer.start(a);
  clock.nowMs = 1002;
  probe.responded();
  probe.end();
  assert.equal(balancer.pick([a, b]), a);
});

test('the recovered endpoint starts afresh: the probe latency is its estimate', () => {
  const { clock, balancer } = newBalancer({ random: () => 0.5 });
  const [a, b] = [ep('a'), ep('b')];
  for (const e of [a, b]) {
    const r = balancer.start(e);
    clock.nowMs += 2;
    r.responded();
    r.end();
  }
  fail(balancer, a, 7); // each failure is a 30 ms sample (no fast-failure black hole)
  clock.nowMs += 1000;
  assert.equal(balancer.pick([a, b]), a); // the probe
  const probe = balancer.start(a);
  clock.nowMs += 1;
  probe.responded();
  probe.end();
  // a (1 ms) now beats b (2 ms, barely decayed) whenever the two are compared.
  for (let i = 0; i < 20; i++) assert.equal(balancer.pick([a, b]), a);
});

test('state for endpoints that left the list is dropped', () => {
  const { balancer } = newBalancer({ random: () => 0.5 });
  const [a, b] = [ep('a'), ep('b')];
  fail(balancer, a, 7);
  assert.equal(balancer.pick([a, b]), b);
  assert.equal(balancer.pick([b]), b); // a new list: a's box is forgotten
  assert.equal(balancer.pick([a]), a, 'a comes back with no history');
});

function response(): UpstreamResponse {
  return { status: 500, headers: {}, body: Readable.from([]), trailers: () => undefined };
}

const noHooks: SendHooks = { onContinue: () => {}, onCancel: () => {} };

test('balancedSend: an app 5xx is a success, a reset is a failure, a connect error opens the box at once', async () => {
  const { balancer } = newBalancer({ random: () => 0.5 });
  const [a, b, c] = [ep('a'), ep('b'), ep('c')];
  const ok: Send = async () => response();
  for (let i = 0; i < 20; i++) {
    const res = await balancedSend(balancer, a, ok)(headFor(), null, noHooks);
    res.body.resume();
  }
  assert.notEqual(balancer.pick([a]), undefined);
  const reset = new PeerError('reset');
  for (let i = 0; i < DEFAULT_FAILURE_ACCRUAL.consecutiveFailures; i++) {
    await assert.rejects(
      balancedSend(balancer, a, () => Promise.reject(reset))(headFor(), null, noHooks),
      reset,
    );
  }
  assert.equal(balancer.pick([a]), undefined, 'a is in the box');
  assert.equal(balancer.pick([a, b]), b);
  const refused = new ConnectError('c', undefined);
  await assert.rejects(
    balancedSend(balancer, c, () => Promise.reject(refused))(headFor(), null, noHooks),
    refused,
  );
  assert.equal(balancer.pick([a, b, c]), b, 'one connect failure puts c in the box');
});

// Regression: a replica's proxy stopped without deregistering cost 1-3 502s even with a retry on
// another endpoint, because the re-pick chose the dead endpoint again. A connect failure was a
// 30 ms latency sample and only the seventh opened the box, so P2C found the dead endpoint
// cheaper than a live one that peak-EWMA remembered at 50 ms.
test('right after a connect failure, pick never returns the unreachable endpoint, even when the live one looks slower', () => {
  const { clock, balancer } = newBalancer({ random: seeded(7) });
  const [dead, live] = [ep('dead'), ep('live')];
  for (const [e, ms] of [
    [dead, 2],
    [live, 50],
  ] as const) {
    const r = balancer.start(e);
    clock.nowMs += ms;
    r.responded();
    r.end();
  }
  for (let i = 0; i < 50; i++) {
    const r = balancer.start(dead);
    r.connectFailed();
    r.end();
    assert.equal(balancer.pick([dead, live]), live);
    assert.equal(balancer.pick([dead, live], live), undefined, 'except: nothing else is available');
  }
});

test('nextAvailableAtMs: the end of a backoff, then nothing while the probe is in flight; onProbeSettled fires on its outcome', () => {
  let settled = 0;
  const { clock, balancer } = newBalancer({ random: () => 0.5, onProbeSettled: () => settled++ });
  const a = ep('a');
  assert.equal(balancer.nextAvailableAtMs([a]), undefined, 'closed: nothing to wait for');
  const r = balancer.start(a);
  r.connectFailed();
  r.end();
  assert.equal(balancer.pick([a]), undefined);
  assert.equal(balancer.nextAvailableAtMs([a]), 1000);
  clock.nowMs = 1000;
  assert.equal(balancer.pick([a]), a, 'the probe');
  assert.equal(balancer.nextAvailableAtMs([a]), 2000, 'an unused probe claim lapses after 1 s');
  const probe = balancer.start(a);
  assert.equal(balancer.nextAvailableAtMs([a]), undefined);
  assert.equal(settled, 0);
  probe.responded();
  assert.equal(settled, 1);
  probe.end();
  assert.equal(settled, 1, 'once per probe');
  assert.equal(balancer.pick([a]), a);
});

test('balancedSend: a request cancelled by its client or a timeout is not a failure', async () => {
  const { balancer } = newBalancer({ random: () => 0.5 });
  const a = ep('a');
  // The next hop rejects with PeerError once cancelled, as upstream-h1 does after req.destroy().
  const hanging: Send = (_h, _b, hooks) =>
    new Promise((_, reject) => hooks.onCancel(() => reject(new PeerError('socket hang up'))));
  for (let i = 0; i < 20; i++) {
    let cancel = () => {};
    const hooks: SendHooks = { onContinue: () => {}, onCancel: (c) => (cancel = c) };
    const sending = balancedSend(balancer, a, hanging)(headFor(), null, hooks);
    cancel();
    await assert.rejects(sending, PeerError);
  }
  // Other errors (a bug, a timeout raised above this layer) are not the endpoint's either.
  await assert.rejects(
    balancedSend(balancer, a, () => Promise.reject(new ResponseTimeoutError(1)))(headFor(), null, noHooks),
  );
  assert.equal(balancer.pick([a]), a);
});

function headFor() {
  return {
    method: 'GET',
    scheme: 'http',
    authority: 'svc:80',
    path: '/',
    headers: {},
    origProto: 'HTTP/1.1' as const,
    hasBody: false,
    grpc: false,
    timeoutMs: 0,
  };
}
