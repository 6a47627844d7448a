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

/**
 * A balancer on a virtual clock whose end-of-turn callbacks (the release of reservations that no
 * `start` took over) run only when the test calls `endTurn()`.
 */
function newBalancer(opts: Partial<EndpointBalancerOptions> = {}) {
  const { clock, now } = newClock();
  const deferred: Array<() => void> = [];
  const endTurn = () => {
    for (const fn of deferred.splice(0)) fn();
  };
  const balancer = new EndpointBalancer({
    now,
    random: seeded(1),
    defer: (fn) => deferred.push(fn),
    ...opts,
  });
  /** `pick` in a turn of its own: nothing started, so its reservation is gone afterwards. */
  const pickAlone = (endpoints: readonly Endpoint[], except?: Endpoint): Endpoint | undefined => {
    const chosen = balancer.pick(endpoints, except);
    endTurn();
    return chosen;
  };
  return { clock, balancer, endTurn, pickAlone };
}

/**
 * Closed-loop simulation on a virtual clock: `concurrency` clients each send a request, wait for
 * its response, and send the next. Latency per endpoint, ±20% jitter. Returns picks per address.
 */
function simulate(latencyMs: Record<string, number>, requests: number, concurrency: number, seed: number) {
  const random = seeded(seed);
  const { clock, now } = newClock();
  const deferred: Array<() => void> = [];
  const balancer = new EndpointBalancer({ now, random, defer: (fn) => deferred.push(fn) });
  const endpoints = Object.keys(latencyMs).map((a) => ep(a));
  const counts: Record<string, number> = Object.fromEntries(endpoints.map((e) => [e.addr, 0]));
  const inFlight: Array<{ atMs: number; done: () => void }> = [];
  const send = () => {
    const e = balancer.pick(endpoints)!;
    counts[e.addr]++;
    const request = balancer.start(e);
    for (const fn of deferred.splice(0)) fn(); // the turn ends
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

test('P2C over latency EWMA: an endpoint 10x slower gets under 10% of requests', () => {
  for (const seed of [1, 2, 3]) {
    for (const concurrency of [1, 4, 16]) {
      const counts = simulate({ a: 2, b: 2, slow: 20 }, 3000, concurrency, seed);
      const share = counts.slow / 3000;
      assert.ok(share < 0.1, `seed ${seed}, concurrency ${concurrency}: ${JSON.stringify(counts)}`);
    }
  }
});

// One request at a time, nothing but the estimates decides, and an endpoint left with a high
// sample waits for the decay toward zero (2 s) to be tried again: ±25% there.
test('P2C over latency EWMA: three equal endpoints each get a third, ±15% (±25% one at a time)', () => {
  for (const seed of [1, 2, 3]) {
    for (const concurrency of [1, 4, 16]) {
      const counts = simulate({ a: 5, b: 5, c: 5 }, 3000, concurrency, seed);
      for (const n of Object.values(counts)) {
        assert.ok(
          Math.abs(n - 1000) <= (concurrency === 1 ? 250 : 150),
          `seed ${seed}, concurrency ${concurrency}: ${JSON.stringify(counts)}`,
        );
      }
    }
  }
});

/** One request to `e` that answers after `ms` on the virtual clock. */
function sample(balancer: EndpointBalancer, clock: { nowMs: number }, e: Endpoint, ms: number) {
  const r = balancer.start(e);
  clock.nowMs += ms;
  r.responded();
  r.end();
}

// The herd: requests picked before any of them started (waiters handed out together, requests
// that arrived together) all saw the cheapest endpoint idle and all went there.
test('a pick counts as pending at once: picks in one turn spread by cost; unstarted ones are released at its end', () => {
  const { clock, balancer, endTurn, pickAlone } = newBalancer();
  const [a, b] = [ep('a'), ep('b')];
  sample(balancer, clock, a, 1);
  sample(balancer, clock, b, 2.5);
  // Costs 1·(n+1) against 2.5·(m+1): a, a, b, a, a, not five times a.
  const picks = [1, 2, 3, 4, 5].map(() => balancer.pick([a, b])?.addr);
  assert.deepEqual(picks, ['a', 'a', 'b', 'a', 'a']);
  endTurn(); // none was started: all five released, a is idle and cheapest again
  for (let i = 0; i < 20; i++) assert.equal(pickAlone([a, b]), a);
});

test('start takes over the reservation of its pick (counted once) and survives the end of the turn', () => {
  const { clock, balancer, endTurn, pickAlone } = newBalancer();
  const [a, b] = [ep('a'), ep('b')];
  sample(balancer, clock, a, 1);
  sample(balancer, clock, b, 2.5);
  assert.equal(balancer.pick([a, b]), a);
  const first = balancer.start(a); // a: 1·2 = 2 < 2.5; counted twice it would be 3
  assert.equal(balancer.pick([a, b]), a);
  endTurn();
  balancer.start(a); // without a pick: a now has two requests pending, 1·3 > 2.5
  assert.equal(pickAlone([a, b]), b);
  first.end();
  assert.equal(pickAlone([a, b]), a);
});

test('a probe pick reserves like any other: the probe started in its turn is the probe', () => {
  let settled = 0;
  const { clock, balancer, endTurn } = newBalancer({ random: () => 0.5, onProbeSettled: () => settled++ });
  const a = ep('a');
  const r = balancer.start(a);
  r.connectFailed();
  r.end();
  clock.nowMs = 1000;
  assert.equal(balancer.pick([a]), a, 'the probe');
  const probe = balancer.start(a);
  endTurn();
  probe.responded();
  probe.end();
  assert.equal(settled, 1);
});

test('weights scale the cost: weight 0 is never picked, a lone weight-0 endpoint means none', () => {
  const { pickAlone } = newBalancer();
  assert.equal(pickAlone([]), undefined);
  assert.equal(pickAlone([ep('z', 0)]), undefined);
  for (let i = 0; i < 100; i++) assert.equal(pickAlone([ep('z', 0), ep('a')])!.addr, 'a');
});

test('pending requests raise the cost: the idle endpoint is preferred', () => {
  const { balancer, pickAlone } = newBalancer();
  const [x, y] = [ep('x'), ep('y')];
  const r = balancer.start(x);
  for (let i = 0; i < 50; i++) assert.equal(pickAlone([x, y]), y);
  r.end();
  r.end(); // idempotent
  const seen = new Set<string>();
  for (let i = 0; i < 100; i++) seen.add(pickAlone([x, y])!.addr);
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
  const { clock, balancer, pickAlone } = newBalancer({ random: () => 0.5 }); // backoff exactly 1 s
  const [a, b] = [ep('a'), ep('b')];
  fail(balancer, a, 7);
  for (let i = 0; i < 20; i++) assert.equal(pickAlone([a, b]), b);
  fail(balancer, b, 7);
  assert.equal(pickAlone([a, b]), undefined);
  clock.nowMs = 999;
  assert.equal(pickAlone([a, b]), undefined);
  // Both backoffs are over: one probe each, then nothing until a probe answers.
  clock.nowMs = 1000;
  const probes = [pickAlone([a, b]), pickAlone([a, b])].map((e) => e?.addr);
  assert.deepEqual(probes.sort(), ['a', 'b']);
  assert.equal(pickAlone([a, b]), undefined);
  const probe = balancer.start(a);
  clock.nowMs = 1002;
  probe.responded();
  probe.end();
  assert.equal(pickAlone([a, b]), a);
});

test('the recovered endpoint starts afresh: the probe latency is its estimate', () => {
  const { clock, balancer, pickAlone } = newBalancer({ random: () => 0.5 });
  const [a, b] = [ep('a'), ep('b')];
  for (const e of [a, b]) {
    const r = balancer.start(e);
    clock.nowMs += 2;
    r.responded();
    r.end();
  }
  fail(balancer, a, 7); // each failure is a 30 ms sample (no fast-failure black hole)
  clock.nowMs += 1000;
  assert.equal(pickAlone([a, b]), a); // the probe
  const probe = balancer.start(a);
  clock.nowMs += 1;
  probe.responded();
  probe.end();
  // a (1 ms) now beats b (2 ms, barely decayed) whenever the two are compared.
  for (let i = 0; i < 20; i++) assert.equal(pickAlone([a, b]), a);
});

test('state for endpoints that left the list is dropped', () => {
  const { balancer, pickAlone } = newBalancer({ random: () => 0.5 });
  const [a, b] = [ep('a'), ep('b')];
  fail(balancer, a, 7);
  assert.equal(pickAlone([a, b]), b);
  assert.equal(pickAlone([b]), b); // a new list: a's box is forgotten
  assert.equal(pickAlone([a]), a, 'a comes back with no history');
});

function response(): UpstreamResponse {
  return { status: 500, headers: {}, body: Readable.from([]), trailers: () => undefined };
}

const noHooks: SendHooks = {
  onInformational: () => {},
  requestTrailers: () => undefined,
  onCancel: () => {},
};

test('balancedSend: an app 5xx is a success, a reset is a failure, a connect error opens the box at once', async () => {
  const { balancer, pickAlone } = newBalancer({ random: () => 0.5 });
  const [a, b, c] = [ep('a'), ep('b'), ep('c')];
  const ok: Send = async () => response();
  for (let i = 0; i < 20; i++) {
    const res = await balancedSend(balancer, a, ok)(headFor(), null, noHooks);
    res.body.resume();
  }
  assert.notEqual(pickAlone([a]), undefined);
  const reset = new PeerError('reset');
  for (let i = 0; i < DEFAULT_FAILURE_ACCRUAL.consecutiveFailures; i++) {
    await assert.rejects(
      balancedSend(balancer, a, () => Promise.reject(reset))(headFor(), null, noHooks),
      reset,
    );
  }
  assert.equal(pickAlone([a]), undefined, 'a is in the box');
  assert.equal(pickAlone([a, b]), b);
  const refused = new ConnectError('c', undefined);
  await assert.rejects(
    balancedSend(balancer, c, () => Promise.reject(refused))(headFor(), null, noHooks),
    refused,
  );
  assert.equal(pickAlone([a, b, c]), b, 'one connect failure puts c in the box');
});

// Regression: a replica's proxy stopped without deregistering cost 1-3 502s even with a retry on
// another endpoint, because the re-pick chose the dead endpoint again. A connect failure was a
// 30 ms latency sample and only the seventh opened the box, so P2C found the dead endpoint
// cheaper than a live one that peak-EWMA remembered at 50 ms.
test('right after a connect failure, pick never returns the unreachable endpoint, even when the live one looks slower', () => {
  const { clock, balancer, pickAlone } = newBalancer({ random: seeded(7) });
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
    assert.equal(pickAlone([dead, live]), live);
    assert.equal(pickAlone([dead, live], live), undefined, 'except: nothing else is available');
  }
});

test('nextAvailableAtMs: the end of a backoff, then nothing while the probe is in flight; onProbeSettled fires on its outcome', () => {
  let settled = 0;
  const { clock, balancer, pickAlone } = newBalancer({ random: () => 0.5, onProbeSettled: () => settled++ });
  const a = ep('a');
  assert.equal(balancer.nextAvailableAtMs([a]), undefined, 'closed: nothing to wait for');
  const r = balancer.start(a);
  r.connectFailed();
  r.end();
  assert.equal(pickAlone([a]), undefined);
  assert.equal(balancer.nextAvailableAtMs([a]), 1000);
  clock.nowMs = 1000;
  assert.equal(pickAlone([a]), a, 'the probe');
  assert.equal(balancer.nextAvailableAtMs([a]), 2000, 'an unused probe claim lapses after 1 s');
  const probe = balancer.start(a);
  assert.equal(balancer.nextAvailableAtMs([a]), undefined);
  assert.equal(settled, 0);
  probe.responded();
  assert.equal(settled, 1);
  probe.end();
  assert.equal(settled, 1, 'once per probe');
  assert.equal(pickAlone([a]), a);
});

test('balancedSend: a request cancelled by its client or a timeout is not a failure', async () => {
  const { balancer, pickAlone } = newBalancer({ random: () => 0.5 });
  const a = ep('a');
  // The next hop rejects with PeerError once cancelled, as upstream-h1 does after req.destroy().
  const hanging: Send = (_h, _b, hooks) =>
    new Promise((_, reject) => hooks.onCancel(() => reject(new PeerError('socket hang up'))));
  for (let i = 0; i < 20; i++) {
    let cancel = () => {};
    const hooks: SendHooks = {
      onInformational: () => {},
      requestTrailers: () => undefined,
      onCancel: (c) => (cancel = c),
    };
    const sending = balancedSend(balancer, a, hanging)(headFor(), null, hooks);
    cancel();
    await assert.rejects(sending, PeerError);
  }
  // Other errors (a bug, a timeout raised above this layer) are not the endpoint's either.
  await assert.rejects(
    balancedSend(balancer, a, () => Promise.reject(new ResponseTimeoutError(1)))(headFor(), null, noHooks),
  );
  assert.equal(pickAlone([a]), a);
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
