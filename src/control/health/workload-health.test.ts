import assert from 'node:assert/strict';
import http from 'node:http';
import type net from 'node:net';
import { after, describe, it } from 'node:test';
import { eventually } from '../../../test/support/eventually.js';
import { newLogger } from '../../lib/log.js';
import { newWorkloadHealth, probeLive } from './workload-health.js';

const log = newLogger('error', {}, () => {});
const servers: http.Server[] = [];

/** A stand-in for a proxy's admin listener: GET /live answers 200. */
function liveServer(port = 0): Promise<{ server: http.Server; addr: string }> {
  const server = http.createServer((req, res) => {
    res.statusCode = req.url === '/live' ? 200 : 404;
    res.end();
  });
  servers.push(server);
  return new Promise((resolve) =>
    server.listen(port, '127.0.0.1', () =>
      resolve({ server, addr: `127.0.0.1:${(server.address() as net.AddressInfo).port}` }),
    ),
  );
}

function close(server: http.Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

after(async () => {
  await Promise.all(servers.filter((s) => s.listening).map(close));
});

describe('workload health', () => {
  it('probes /live', async () => {
    const { server, addr } = await liveServer();
    assert.equal(await probeLive(addr, 500), true);
    await close(server);
    assert.equal(await probeLive(addr, 500), false);
    assert.equal(await probeLive('not an address', 500), false);
  });

  it('turns unready after consecutive failures and ready again after a success', async () => {
    const { server, addr } = await liveServer();
    const port = Number(addr.split(':')[1]);
    const health = newWorkloadHealth(log, { intervalMs: 50, failureThreshold: 2 });
    // The checker's timer is unref'd (it never keeps the control plane alive): hold the loop open.
    const keepAlive = setInterval(() => {}, 1000);
    const changes: [string, boolean][] = [];
    const changed = (n: number) =>
      new Promise<void>((resolve) => {
        const stop = health.onChange((id, ready) => {
          changes.push([id, ready]);
          if (changes.length >= n) {
            stop();
            resolve();
          }
        });
      });
    try {
      health.track('default/a', addr);
      assert.equal(health.isReady('default/a'), true, 'a tracked workload starts ready');
      assert.equal(health.isReady('default/untracked'), true, 'no health information: ready');
      const down = changed(1);
      await close(server);
      const closedAt = performance.now();
      await down;
      assert.deepEqual(changes, [['default/a', false]]);
      assert.equal(health.isReady('default/a'), false);
      assert.ok(performance.now() - closedAt < 1000);
      const up = changed(2);
      await liveServer(port);
      await up;
      assert.deepEqual(changes[1], ['default/a', true]);
      health.untrack('default/a');
      assert.equal(health.isReady('default/a'), true);
    } finally {
      clearInterval(keepAlive);
      health.close();
    }
  });
  it('reports a Workload failing longer than gcAfterMs as expired, and counts probes', async () => {
    const { server, addr } = await liveServer();
    const health = newWorkloadHealth(log, { intervalMs: 50, failureThreshold: 2, gcAfterMs: 400 });
    const keepAlive = setInterval(() => {}, 1000);
    try {
      health.track('default/a', addr);
      await eventually(() => assert.ok(health.stats().probesSucceeded >= 1));
      const expired = new Promise<[string, string, number]>((resolve) => {
        const stop = health.onExpired((id, admin, ms) => {
          stop();
          resolve([id, admin, ms]);
        });
      });
      await close(server);
      const closedAt = performance.now();
      const [id, admin, failingForMs] = await expired;
      assert.deepEqual([id, admin], ['default/a', addr]);
      assert.ok(failingForMs >= 400, `expired after ${failingForMs} ms of failures`);
      assert.ok(performance.now() - closedAt >= 400);
      const s = health.stats();
      assert.equal(s.tracked, 1);
      assert.equal(s.unready, 1);
      assert.ok(s.probesFailed >= 2, `only ${s.probesFailed} failed probes counted`);
    } finally {
      clearInterval(keepAlive);
      health.close();
    }
  });
});
