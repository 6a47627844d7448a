import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LoadShedError, NoEndpointsError } from '../../lib/errors.js';
import type { Endpoint } from '../discovery/discovery.js';
import { MutableDestination } from '../discovery/mutable-destination.js';
import { BalanceQueue } from './balance-queue.js';

const ep = (addr: string): Endpoint => ({
  addr,
  host: '127.0.0.1',
  port: 1,
  meshed: false,
  weight: 1,
  labels: {},
});

/** Settles `p` into what it came to, so tests can look at many promises at once. */
function track<T>(p: T | Promise<T>) {
  const out: { value?: T; error?: unknown; settledAtMs?: number } = {};
  void Promise.resolve(p).then(
    (value) => Object.assign(out, { value, settledAtMs: performance.now() }),
    (error: unknown) => Object.assign(out, { error, settledAtMs: performance.now() }),
  );
  return out;
}

const tick = () => new Promise<void>((r) => setImmediate(r));

test('an available endpoint is picked at once, synchronously', () => {
  const dest = new MutableDestination('svc:80', false, [ep('a')]);
  const queue = new BalanceQueue(dest, { capacity: 10, failFastMs: 1000 });
  assert.equal((queue.pick() as Endpoint).addr, 'a');
  assert.equal(queue.waiting, 0);
});

test('waiters get an endpoint added by discovery, in arrival order', async () => {
  const dest = new MutableDestination('svc:80', false, []);
  const queue = new BalanceQueue(dest, { capacity: 10, failFastMs: 10_000 });
  const order: number[] = [];
  const waits = [0, 1, 2].map((i) =>
    Promise.resolve(queue.pick()).then((e) => {
      order.push(i);
      return e;
    }),
  );
  assert.equal(queue.waiting, 3);
  dest.update({ endpoints: [ep('a')] });
  assert.equal(queue.waiting, 0, 'all handed out on the update');
  assert.deepEqual(
    (await Promise.all(waits)).map((e) => e.addr),
    ['a', 'a', 'a'],
  );
  assert.deepEqual(order, [0, 1, 2]);
});

// The herd: the drain loop picks for every waiter before any of them starts its request. With
// `random` always 0, P2C breaks ties for the first endpoint, so without a pick counting as
// pending at once all four waiters would get `a`.
test('waiters handed out together spread over the endpoints', async () => {
  const dest = new MutableDestination('svc:80', false, []);
  const queue = new BalanceQueue(dest, { capacity: 10, failFastMs: 10_000 }, { random: () => 0 });
  const waits = [0, 1, 2, 3].map(() => Promise.resolve(queue.pick()));
  dest.update({ endpoints: [ep('a'), ep('b')] });
  assert.deepEqual(
    (await Promise.all(waits)).map((e) => e.addr),
    ['a', 'b', 'a', 'b'],
  );
});

test('after the fail-fast deadline a waiter fails with NoEndpointsError; a full queue sheds at once', async () => {
  const dest = new MutableDestination('svc:80', false, []);
  const queue = new BalanceQueue(dest, { capacity: 2, failFastMs: 200 });
  const startMs = performance.now();
  const first = track(queue.pick());
  const second = track(queue.pick());
  assert.throws(
    () => queue.pick(),
    (err) => err instanceof LoadShedError && err.code === 'WEFT_ERR_LOAD_SHED' && err.httpStatus === 503,
  );
  while (first.settledAtMs === undefined || second.settledAtMs === undefined) await tick();
  for (const w of [first, second]) {
    assert.ok(w.error instanceof NoEndpointsError, String(w.error));
    assert.ok((w.settledAtMs as number) - startMs >= 195, 'not before the deadline');
  }
  assert.equal(queue.waiting, 0);
  dest.update({ endpoints: [ep('a')] }); // nobody waits any more: nothing to hand out
  assert.equal((queue.pick() as Endpoint).addr, 'a');
});

test('a fail-fast timeout of 0 fails at once without queueing', () => {
  const queue = new BalanceQueue(new MutableDestination('svc:80', false, []), {
    capacity: 10,
    failFastMs: 0,
  });
  assert.throws(() => queue.pick(), NoEndpointsError);
});

test('waiters for an endpoint in the penalty box: the first gets the probe when the backoff runs out, the rest its success', async () => {
  const a = ep('a');
  const dest = new MutableDestination('svc:80', false, [a]);
  // random 0: the shortest backoff, 1 s * (1 - 0.5) = 500 ms.
  const queue = new BalanceQueue(dest, { capacity: 10, failFastMs: 5000 }, { random: () => 0 });
  const failed = queue.balancer.start(a);
  failed.connectFailed();
  failed.end();
  const openedAtMs = performance.now();
  const first = track(queue.pick());
  const second = track(queue.pick());
  while (first.settledAtMs === undefined) await tick();
  assert.equal(first.value?.addr, 'a', 'the probe');
  assert.ok(first.settledAtMs - openedAtMs >= 490, `probe after ${first.settledAtMs - openedAtMs} ms`);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(second.settledAtMs, undefined, 'waits for the probe outcome');
  const probe = queue.balancer.start(a);
  probe.responded();
  probe.end();
  while (second.settledAtMs === undefined) await tick();
  assert.equal(second.value?.addr, 'a');
});
