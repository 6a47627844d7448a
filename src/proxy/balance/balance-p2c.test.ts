import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Endpoint } from '../discovery/discovery.js';
import { PendingCounter } from './balance-p2c.js';

const ep = (addr: string, weight = 1): Endpoint => ({
  addr,
  host: '127.0.0.1',
  port: 1,
  meshed: true,
  weight,
  labels: {},
});

test('no endpoints: nothing to pick', () => {
  assert.equal(new PendingCounter().pick([]), undefined);
});

test('with two endpoints, the one with fewer pending requests is always chosen', () => {
  const b = new PendingCounter();
  const [x, y] = [ep('x'), ep('y')];
  const done = b.start(x);
  for (let i = 0; i < 50; i++) assert.equal(b.pick([x, y]), y);
  done();
  done(); // idempotent
  const seen = new Set<string>();
  for (let i = 0; i < 200; i++) seen.add(b.pick([x, y])!.addr);
  assert.deepEqual([...seen].sort(), ['x', 'y']);
});

test('idle endpoints share load roughly evenly', () => {
  const b = new PendingCounter();
  const eps = [ep('a'), ep('b'), ep('c')];
  const counts = new Map<string, number>();
  for (let i = 0; i < 3000; i++) {
    const e = b.pick(eps)!;
    counts.set(e.addr, (counts.get(e.addr) ?? 0) + 1);
  }
  for (const e of eps) assert.ok((counts.get(e.addr) ?? 0) > 700, `${e.addr}: ${counts.get(e.addr)}`);
});
