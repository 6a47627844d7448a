/**
 * Mesh scenarios of issue 3 ("What must be shown"), end to end on 127.0.0.1: a control plane
 * started in this process (so the test writes to its store), real apps each behind its own inbound
 * `weft proxy` registered as a Workload (with its admin address, as `weft run` registers it), and
 * one client `weft proxy` discovering through the control plane's Destination stream.
 *
 * 1. Scale up: a third replica is sent traffic within 1 s of its Workload being stored
 *    (measured at the app: store.apply → first request the new app counts).
 * 2. Scale down with drain: under steady load (some requests slow), a replica's Workload is
 *    deleted, the client proxy stops picking it, then its proxy gets SIGTERM while requests are in
 *    flight on it: zero failed requests, and the in-flight ones finish.
 * 3. Control plane killed under load: zero failures while it is down (fail static); a new control
 *    plane on the same address and state directory has every resource, and a replica registered
 *    there reaches the client proxy (resubscribed after its reconnect backoff).
 * 4. A replica's proxy stopped without deregistering (SIGTERM, its Workload left in the store, as
 *    when `weft run` itself is killed): zero failed requests. Requests that meet its refused port
 *    are sent again to another replica (regression: 1-3 of them got 502 ECONNREFUSED).
 *
 * Every wait is bounded and generous (a noisy 2-core machine); the measured figures are printed
 * as test diagnostics.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { RunningControlPlane } from '../src/control/control-plane.js';
import { newLogger } from '../src/lib/log.js';
import { RESOURCE_KINDS } from '../src/store/resource.js';
import { echoHandler, type HttpApp, startHttpApp } from './support/apps.js';
import { startTestControlPlane } from './support/control-plane.js';
import { eventually } from './support/eventually.js';
import { sampleSum } from './support/prom-text.js';
import { proxiedGet } from './support/proxied-get.js';
import { type LogEntry, type ProxyProcess, startProxy } from './support/proxy-process.js';

const SERVICE = 'books';
const AUTHORITY = 'books:7002';
/** Issue 3: a replica added is seen by a client's proxy within this. */
const SCALE_UP_BOUND_MS = 1000;
/** Reconnect backoff is capped at 10 s (discovery-grpc.ts); allow for it and a slow machine. */
const RESUBSCRIBE_BOUND_MS = 15_000;
/** The long requests that are in flight on a replica when its proxy is told to drain. */
const LONG_PATH = '/slow/3000';

const controlLogs: string[] = [];
const log = newLogger('info', { component: 'control' }, (l) => controlLogs.push(l));

let dir: string;
let control: RunningControlPlane | undefined;
let client: ProxyProcess;
const replicas = new Map<string, Replica>();

/** One app behind its own inbound proxy, with what the app saw. */
interface Replica {
  readonly name: string;
  readonly app: HttpApp;
  readonly proxy: ProxyProcess;
  /** performance.now() of the first request the app handled (same clock as the test). */
  readonly firstAt: number | undefined;
  /** Requests the app is handling now; and of those, LONG_PATH ones. */
  readonly active: number;
  readonly longActive: number;
}

async function startControl(addr = '127.0.0.1:0'): Promise<RunningControlPlane> {
  control = await startTestControlPlane({ stateDir: dir, log, destinationAddr: addr });
  return control;
}

function cp(): RunningControlPlane {
  assert.ok(control, 'the control plane is running');
  return control;
}

async function startReplica(name: string): Promise<Replica> {
  const seen = { firstAt: undefined as number | undefined, active: 0, longActive: 0 };
  const app = await startHttpApp((req, res) => {
    seen.firstAt ??= performance.now();
    const long = req.url === LONG_PATH;
    seen.active++;
    if (long) seen.longActive++;
    res.once('close', () => {
      seen.active--;
      if (long) seen.longActive--;
    });
    echoHandler(req, res);
  });
  let proxy: ProxyProcess;
  try {
    proxy = await startProxy({ args: ['--app-port', String(app.port), '--outbound-listen-addr', 'none'] });
  } catch (err) {
    await app.close();
    throw err;
  }
  const r: Replica = {
    name,
    app,
    proxy,
    get firstAt() {
      return seen.firstAt;
    },
    get active() {
      return seen.active;
    },
    get longActive() {
      return seen.longActive;
    },
  };
  replicas.set(name, r);
  return r;
}

/** The Workload `weft run` would register for `r`: its inbound proxy as the endpoint, probed on its admin address. */
function workload(r: Replica) {
  const [host, port] = (r.proxy.inbound as string).split(':');
  return {
    apiVersion: 'weft.io/v1alpha1',
    kind: 'Workload',
    metadata: { name: r.name, labels: { replica: r.name } },
    spec: { service: SERVICE, address: host, port: Number(port), adminAddress: r.proxy.admin },
  };
}

const service = {
  apiVersion: 'weft.io/v1alpha1',
  kind: 'Service',
  metadata: { name: SERVICE },
  spec: { ports: [{ port: 7002 }] },
};

/** A GET of `path` on the service through the client proxy (absolute form, as HTTP_PROXY clients send). */
function get(path = '/'): Promise<void> {
  return proxiedGet(client.outbound as string, AUTHORITY, path);
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

interface LoadResult {
  ok: number;
  /** "<ms since start> <path>: <error>" of each failed request. */
  failures: string[];
}

interface Load {
  readonly result: LoadResult;
  /** Stops sending; resolves once every worker's last request settled. */
  stop(): Promise<LoadResult>;
}

/**
 * `workers` sequential senders, each pausing `pauseMs` after every request, until `stop()` or
 * `maxMs` (a bound, so a hung test cannot loop forever). `pathOf(i)` is a worker's i-th path.
 */
function startLoad(opts: {
  workers?: number;
  pauseMs?: number;
  maxMs: number;
  pathOf?: (i: number) => string;
}): Load {
  const { workers = 2, pauseMs = 10, maxMs, pathOf = () => '/' } = opts;
  const result: LoadResult = { ok: 0, failures: [] };
  const start = performance.now();
  let stopped = false;
  const worker = async () => {
    for (let i = 0; !stopped && performance.now() - start < maxMs; i++) {
      const path = pathOf(i);
      try {
        await get(path);
        result.ok++;
      } catch (err) {
        result.failures.push(
          `${(performance.now() - start).toFixed(0)} ms ${path}: ${(err as Error).message}`,
        );
      }
      await sleep(pauseMs);
    }
  };
  const all = Promise.all(Array.from({ length: workers }, worker));
  return {
    result,
    stop: async () => {
      stopped = true;
      await all;
      return result;
    },
  };
}

const isUpdate = (kind: string) => (e: LogEntry) =>
  e.msg === 'destination updated' && e.authority === AUTHORITY && e.update === kind;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'weft-mesh-scenarios-'));
  const a = await startReplica('books-a');
  const b = await startReplica('books-b');
  await startControl();
  await cp().store.apply(service);
  await cp().store.apply(workload(a));
  await cp().store.apply(workload(b));
  client = await startProxy({
    args: [
      '--inbound-listen-addr',
      'none',
      '--destination-addr',
      cp().addresses.destination,
      '--log-level',
      'debug',
    ],
  });
  // Both replicas serve through the client proxy before any scenario starts.
  await eventually(
    async () => {
      await get();
      assert.ok(a.firstAt !== undefined && b.firstAt !== undefined, 'both replicas reached');
    },
    { timeoutMs: 15_000, intervalMs: 10 },
  );
});

after(async () => {
  await Promise.all([client, ...[...replicas.values()].map((r) => r.proxy)].map((p) => p?.stop()));
  await control?.shutdown();
  await Promise.all([...replicas.values()].map((r) => r.app.close()));
  await rm(dir, { recursive: true, force: true });
});

describe('mesh scenarios: one client proxy, replicas behind their own proxies, discovery from weft control', () => {
  it('scale up: a third replica gets requests within 1 s of its Workload being stored', async (t) => {
    const c = await startReplica('books-c');
    const load = startLoad({ maxMs: 12_000 });
    try {
      await sleep(300); // the load is flowing to a and b
      assert.equal(c.firstAt, undefined, 'nothing reached books-c before it was registered');
      const appliedAt = performance.now();
      await cp().store.apply(workload(c));
      const firstAt = await eventually(
        () => {
          const at = c.firstAt;
          assert.ok(at !== undefined, 'books-c has no request yet');
          return at;
        },
        { intervalMs: 1, timeoutMs: 10_000 },
      );
      const latencyMs = firstAt - appliedAt;
      t.diagnostic(`scale up: first request at the new replica ${latencyMs.toFixed(0)} ms after store.apply`);
      assert.ok(latencyMs < SCALE_UP_BOUND_MS, `new replica first reached after ${latencyMs} ms`);
    } finally {
      const { ok, failures } = await load.stop();
      t.diagnostic(`scale up: ${ok} requests, ${failures.length} failed`);
      assert.deepEqual(failures, []);
    }
  });

  it('scale down with drain: zero failed requests while a replica is deleted and its proxy drains', async (t) => {
    const c = replicas.get('books-c') as Replica;
    // Steady load, one request in four slow, so requests are in flight on every replica.
    const load = startLoad({ maxMs: 10_000, pathOf: (i) => (i % 4 === 3 ? '/slow/200' : '/') });
    const long: Promise<void>[] = [];
    const longFailures: string[] = [];
    const sendLong = () =>
      long.push(get(LONG_PATH).catch((err: Error) => void longFailures.push(`${LONG_PATH}: ${err.message}`)));
    try {
      await sleep(1000);
      // Long requests through the client proxy until one of them is in flight on books-c
      // (P2C spreads them; bounded to a few rounds).
      for (let round = 0; round < 5 && c.longActive === 0; round++) {
        for (let i = 0; i < 3; i++) sendLong();
        await eventually(() => assert.ok(c.longActive > 0), { timeoutMs: 1000, intervalMs: 5 }).catch(
          () => {},
        );
      }
      assert.ok(c.longActive > 0, 'a long request is in flight on books-c');

      // Remove it from discovery first, and wait until the client proxy has seen that.
      const removesBefore = client.logEntries(isUpdate('remove')).length;
      const deletedAt = performance.now();
      await cp().store.delete('Workload', 'default', c.name);
      await eventually(
        () => assert.ok(client.logEntries(isUpdate('remove')).length > removesBefore, 'removal not seen'),
        { intervalMs: 2, timeoutMs: 5000 },
      );
      const seenMs = performance.now() - deletedAt;
      assert.equal(client.logEntries(isUpdate('remove')).at(-1)?.endpoints, 2);
      const countAtRemoval = c.app.requestCount();
      const inFlight = { all: c.active, long: c.longActive };
      assert.ok(inFlight.long > 0, 'the long request is still in flight when the proxy is told to drain');

      // Then drain its proxy: the in-flight requests finish, then it exits.
      const stoppedAt = performance.now();
      const exit = await c.proxy.stop('SIGTERM', 20_000);
      const drainMs = performance.now() - stoppedAt;
      t.diagnostic(
        `scale down: removal seen by the client proxy ${seenMs.toFixed(0)} ms after store.delete; ` +
          `${inFlight.all} requests in flight on the replica (${inFlight.long} of ${LONG_PATH}) at SIGTERM; ` +
          `its proxy drained and exited in ${drainMs.toFixed(0)} ms; ` +
          `${c.app.requestCount() - countAtRemoval} requests reached it after the removal was seen`,
      );
      assert.deepEqual(exit, { code: 0, signal: null }, 'the replica proxy drained and exited by itself');
      assert.equal(c.active, 0, 'nothing left in flight on the drained replica');
      await sleep(1000); // the load goes on, to the remaining replicas only
    } finally {
      const { ok, failures } = await load.stop();
      await Promise.all(long);
      t.diagnostic(
        `scale down: ${ok} steady requests + ${long.length} long ones, ${failures.length + longFailures.length} failed`,
      );
      assert.deepEqual([...failures, ...longFailures], []);
    }
    replicas.delete(c.name);
    await c.app.close();
  });

  it('control plane killed under load: zero failures, then a new one on the same address and state has every resource and its changes reach the proxy', async (t) => {
    const first = cp();
    const addr = first.addresses.destination;
    const before: Record<string, unknown> = {};
    for (const kind of RESOURCE_KINDS) before[kind] = (await first.store.list(kind)).items;
    assert.equal((before.Workload as unknown[]).length, 2);
    // The replica registered after the restart, started now so its start does not count.
    const d = await startReplica('books-d');

    const load = startLoad({ maxMs: 8000, pathOf: (i) => (i % 4 === 3 ? '/slow/50' : '/') });
    let result: LoadResult;
    let shutdownWall = 0;
    try {
      await sleep(2000);
      shutdownWall = Date.now();
      await first.shutdown();
      control = undefined;
      const ended = await client.waitForLog(
        (e) =>
          e.msg === 'destination stream ended; keeping last known endpoints' && e.authority === AUTHORITY,
        10_000,
      );
      assert.equal(ended.endpoints, 2);
      await sleep(4000);
    } finally {
      result = await load.stop();
    }
    t.diagnostic(`control plane down: ${result.ok} requests, ${result.failures.length} failed`);
    assert.deepEqual(result.failures, []);
    assert.ok(result.ok > 50, `the load ran (${result.ok} requests)`);
    assert.deepEqual(
      client.logEntries(
        (e) => e.msg === 'destination updated' && e.authority === AUTHORITY && e.endpoints === 0,
      ),
      [],
      'the client proxy never dropped its endpoints',
    );

    // Back on the same address and state directory: nothing lost.
    const second = await startControl(addr);
    const restartWall = Date.now();
    for (const kind of RESOURCE_KINDS) {
      assert.deepEqual((await second.store.list(kind)).items, before[kind], `${kind} survived the restart`);
    }

    // A change made there reaches the client proxy once it has resubscribed.
    const restartedAt = performance.now();
    await second.store.apply(workload(d));
    const probe = startLoad({ workers: 1, maxMs: RESUBSCRIBE_BOUND_MS + 5000 });
    try {
      await eventually(() => assert.ok(d.firstAt !== undefined, 'books-d has no request yet'), {
        intervalMs: 5,
        timeoutMs: RESUBSCRIBE_BOUND_MS,
      });
    } finally {
      const { failures } = await probe.stop();
      assert.deepEqual(failures, []);
    }
    const seenMs = (d.firstAt as number) - restartedAt;
    // When the client proxy's stream attempts failed (ms after the shutdown) and the retry each scheduled.
    const attempts = client
      .logEntries(
        (e) =>
          e.msg === 'destination stream ended; keeping last known endpoints' && e.authority === AUTHORITY,
      )
      .map((e) => `${Date.parse(String(e.time)) - shutdownWall}+${e.retryInMs}`);
    t.diagnostic(
      `after the restart (${restartWall - shutdownWall} ms after the shutdown): new replica reached ` +
        `${seenMs.toFixed(0)} ms after store.apply; failed stream attempts at ms+retry: ${attempts.join(', ')}`,
    );
    assert.ok(seenMs < RESUBSCRIBE_BOUND_MS);
  });

  it('a replica proxy stopped without deregistering: zero failed requests', async (t) => {
    const d = replicas.get('books-d') as Replica;
    const load = startLoad({ maxMs: 10_000, pathOf: (i) => (i % 4 === 3 ? '/slow/50' : '/') });
    let result: LoadResult;
    try {
      await sleep(1000);
      assert.ok(d.app.requestCount() > 0, 'books-d serves before its proxy stops');
      // Its Workload stays: the client proxy learns nothing until the liveness probes notice.
      const exit = await d.proxy.stop('SIGTERM', 20_000);
      assert.deepEqual(exit, { code: 0, signal: null });
      await sleep(3000);
    } finally {
      result = await load.stop();
    }
    const retried = sampleSum(await client.metrics(), 'retry_total', {
      authority: AUTHORITY,
      reason: 'connect',
    });
    t.diagnostic(
      `replica proxy stopped without deregistering: ${result.ok} requests, ${result.failures.length} failed, ` +
        `${retried} sent again after a connect failure`,
    );
    assert.deepEqual(result.failures, []);
    assert.ok(result.ok > 50, `the load ran (${result.ok} requests)`);
  });
});
