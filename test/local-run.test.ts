/**
 * `weft run` as a real process against a real control plane (started in this process): it
 * registers a Workload reachable as `books:<port>` through another proxy, gives the app PORT and
 * HTTP_PROXY, exits with a job's exit code leaving nothing behind, and a proxy that dies without
 * deregistering (SIGKILL) leaves discovery within 2 s, whether `weft run` survives it (it
 * deregisters) or is killed too (the control plane's liveness probe removes it). A SIGKILL of
 * `weft run` alone leaves no orphan: its app's whole process group and its proxy are gone within 2 s.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import * as http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { type DestinationClient, destinationApi, type Update } from '../proto/destination.js';
import type { RunningControlPlane } from '../src/control/control-plane.js';
import { parseHostPort } from '../src/lib/addr.js';
import { type ApiClient, newApiClient } from '../src/lib/api-client.js';
import { newLogger } from '../src/lib/log.js';
import { isProcessAlive } from '../src/lib/process-alive.js';
import { startTestControlPlane } from './support/control-plane.js';
import { eventually } from './support/eventually.js';
import { fixturePath, WEFT_BIN } from './support/paths.js';
import { isProcessRunning } from './support/process-running.js';
import { type ProxyProcess, startProxy } from './support/proxy-process.js';

/** Issue 3: an endpoint whose proxy died without deregistering leaves discovery within this. */
const REMOVAL_BOUND_MS = 2000;
/** Issue 3: after a SIGKILL of `weft run`, its app (whole process group) and proxy are gone within this. */
const ORPHAN_BOUND_MS = 2000;
const APP = fixturePath('run-app.mjs');

let dir: string;
let control: RunningControlPlane;
let api: ApiClient;
let destination: DestinationClient;
let client: ProxyProcess;
const runs: Run[] = [];
/** Pids of apps started through `weft run`, killed at the end in case a test left one orphaned. */
const appPids = new Set<number>();

type Entry = Record<string, unknown>;

interface Run {
  readonly child: ChildProcess;
  readonly logs: Entry[];
  readonly stdout: string[];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `weft run FLAGS -- CMD...` against the test's control plane. */
function startRun(flags: string[], command: string[]): Run {
  const child = spawn(
    process.execPath,
    [
      WEFT_BIN,
      'run',
      '--api-addr',
      control.addresses.api,
      '--destination-addr',
      control.addresses.destination,
      ...flags,
      '--',
      ...command,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const run: Run = {
    child,
    logs: [],
    stdout: [],
    exited: new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal }))),
  };
  createInterface({ input: child.stderr! }).on('line', (l) => {
    try {
      run.logs.push(JSON.parse(l) as Entry);
    } catch {
      run.logs.push({ text: l });
    }
  });
  createInterface({ input: child.stdout! }).on('line', (l) => {
    run.stdout.push(l);
    const m = /"pid":(\d+)/.exec(l);
    if (m) appPids.add(Number(m[1]));
  });
  runs.push(run);
  return run;
}

/** The "workload registered" line of `run` (workload, appPort, proxyPid, inbound, outbound, admin). */
function registered(run: Run): Promise<Entry> {
  return eventually(
    () => {
      const e = run.logs.find((l) => l.msg === 'workload registered');
      assert.ok(e, `not registered yet; logs: ${JSON.stringify(run.logs)}`);
      // Later "the proxy is gone" checks mean something only for a real, running pid.
      const pid = Number(e.proxyPid);
      assert.ok(
        Number.isInteger(pid) && pid > 0 && isProcessAlive(pid),
        `proxy pid ${e.proxyPid} is not running`,
      );
      return e;
    },
    { timeoutMs: 15_000 },
  );
}

/** The app's "listening" line on stdout. */
function appListening(run: Run): Promise<{ listening: number; pid: number }> {
  return eventually(() => {
    const l = run.stdout.find((s) => s.includes('"listening"'));
    assert.ok(l, 'the app is not listening yet');
    const app = JSON.parse(l) as { listening: number; pid: number };
    assert.ok(isProcessAlive(app.pid), `app pid ${app.pid} is not running`);
    return app;
  });
}

/** Follows a Destination Get stream; `addrs` is the current endpoint set. */
function watchEndpoints(authority: string): { addrs: Set<string>; close: () => void } {
  const addrs = new Set<string>();
  const call = destination.Get({ authority, contextToken: '' });
  call.on('data', (u: Update) => {
    if (u.update === 'add') for (const a of u.add.addrs) addrs.add(a.addr);
    else if (u.update === 'remove') for (const a of u.remove.addrs) addrs.delete(a.addr);
    else addrs.clear();
  });
  call.on('error', () => {});
  return { addrs, close: () => call.cancel() };
}

/** Waits (polling every ms) until `done()` holds; resolves with the time it took. */
async function msUntil(done: () => boolean): Promise<number> {
  const start = performance.now();
  await eventually(() => assert.ok(done()), { intervalMs: 1, timeoutMs: 10_000 });
  return performance.now() - start;
}

/** A GET through the client proxy's outbound listener (absolute form, as HTTP_PROXY clients send). */
function getThrough(authority: string): Promise<Entry> {
  const [host, port] = client.outbound!.split(':');
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host, port: Number(port), path: `http://${authority}/`, headers: { host: authority }, agent: false },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () =>
          res.statusCode === 200
            ? resolve(JSON.parse(body) as Entry)
            : reject(new Error(`${res.statusCode} ${body}`)),
        );
      },
    );
    req.setTimeout(5000, () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end();
  });
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'weft-run-'));
  control = await startTestControlPlane({
    stateDir: dir,
    log: newLogger('warn', { component: 'control' }, () => {}),
  });
  api = newApiClient(parseHostPort(control.addresses.api));
  destination = new (destinationApi().Client)(
    control.addresses.destination,
    grpc.credentials.createInsecure(),
  );
  client = await startProxy({
    args: ['--inbound-listen-addr', 'none', '--destination-addr', control.addresses.destination],
  });
});

after(async () => {
  for (const r of runs) if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGKILL');
  await Promise.all(runs.map((r) => r.exited));
  for (const pid of appPids) if (isProcessAlive(pid)) process.kill(pid, 'SIGKILL');
  await client.stop();
  destination.close();
  await control.shutdown();
  await rm(dir, { recursive: true, force: true });
});

describe('weft run', () => {
  it('registers a Workload that a client proxy reaches as books:<port>; the app sees PORT and HTTP_PROXY', async () => {
    const run = startRun(['--service', 'books', '--account', 'reader'], ['node', APP, 'books-1']);
    const reg = await registered(run);
    const { listening } = await appListening(run);
    assert.equal(listening, reg.appPort);

    const w = await api.get('Workload', 'default', String(reg.workload));
    assert.ok(w, 'the Workload is stored');
    assert.equal(`${w.spec.address}:${w.spec.port}`, reg.inbound);
    assert.equal(w.spec.adminAddress, reg.admin);
    assert.equal(w.spec.identity, 'spiffe://weft.local/ns/default/sa/reader');
    const svc = await api.get('Service', 'default', 'books');
    assert.deepEqual(svc?.spec.ports, [{ port: reg.appPort }]);

    const body = await eventually(() => getThrough(`books:${reg.appPort}`));
    assert.equal(body.name, 'books-1');
    assert.equal(body.port, String(reg.appPort));
    assert.equal(body.httpProxy, `http://${reg.outbound}`);
    assert.equal(body.noProxy, 'localhost,127.0.0.1');

    run.child.kill('SIGTERM'); // forwarded to the app, which exits 0
    assert.deepEqual(await run.exited, { code: 0, signal: null });
    assert.equal(await api.get('Workload', 'default', String(reg.workload)), undefined);
    assert.ok(!isProcessAlive(Number(reg.proxyPid)), 'the proxy is gone');
  });

  it("exits with a job's exit code, deregistered, with no proxy left", async () => {
    const run = startRun(['--service', 'jobs', '--port', '9000'], ['node', '-e', 'process.exit(3)']);
    const reg = await registered(run);
    assert.deepEqual(await run.exited, { code: 3, signal: null });
    assert.equal(await api.get('Workload', 'default', String(reg.workload)), undefined);
    assert.ok(!isProcessAlive(Number(reg.proxyPid)), 'the proxy is gone');
    assert.deepEqual(
      (await api.list('Workload')).items.filter((i) => i.spec.service === 'jobs'),
      [],
    );
  });

  it('removes the endpoint within 2 s when the proxy is SIGKILLed; weft run stops the app and fails', async (t) => {
    const run = startRun(['--service', 'books'], ['node', APP, 'books-2']);
    const reg = await registered(run);
    const app = await appListening(run);
    const svcPort = (await api.get('Service', 'default', 'books'))!.spec.ports[0].port;
    const watch = watchEndpoints(`books:${svcPort}`);
    try {
      await eventually(() => assert.ok(watch.addrs.has(String(reg.inbound))));
      process.kill(Number(reg.proxyPid), 'SIGKILL');
      const removedMs = await msUntil(() => !watch.addrs.has(String(reg.inbound)));
      t.diagnostic(
        `endpoint removed ${removedMs.toFixed(0)} ms after SIGKILL of the proxy (weft run deregisters)`,
      );
      assert.ok(removedMs < REMOVAL_BOUND_MS, `endpoint still listed after ${removedMs} ms`);
    } finally {
      watch.close();
    }
    const exit = await run.exited;
    assert.notEqual(exit.code, 0);
    assert.ok(run.logs.some((l) => l.msg === 'the proxy exited before the app; stopping the app'));
    assert.ok(!isProcessAlive(app.pid), 'the app is stopped');
    assert.equal(await api.get('Workload', 'default', String(reg.workload)), undefined);
  });

  it('removes the endpoint within 2 s when weft run and its proxy are both SIGKILLed (liveness probe)', async (t) => {
    const run = startRun(['--service', 'books'], ['node', APP, 'books-3']);
    const reg = await registered(run);
    const app = await appListening(run);
    const svcPort = (await api.get('Service', 'default', 'books'))!.spec.ports[0].port;
    const watch = watchEndpoints(`books:${svcPort}`);
    try {
      await eventually(() => assert.ok(watch.addrs.has(String(reg.inbound))));
      run.child.kill('SIGKILL');
      process.kill(Number(reg.proxyPid), 'SIGKILL');
      const removedMs = await msUntil(() => !watch.addrs.has(String(reg.inbound)));
      t.diagnostic(
        `endpoint removed ${removedMs.toFixed(0)} ms after SIGKILL of weft run and its proxy (nobody deregistered)`,
      );
      assert.ok(removedMs < REMOVAL_BOUND_MS, `endpoint still listed after ${removedMs} ms`);
      // Nobody deleted it: the Workload is still stored, only left out of discovery.
      assert.ok(await api.get('Workload', 'default', String(reg.workload)));
      // The app's watchdog does not depend on the proxy: the app goes too.
      const goneMs = await msUntil(() => !isProcessRunning(app.pid));
      assert.ok(goneMs < ORPHAN_BOUND_MS, `the app still ran ${goneMs} ms after the SIGKILLs`);
    } finally {
      watch.close();
      if (isProcessAlive(app.pid)) process.kill(app.pid, 'SIGKILL');
      await api.delete('Workload', 'default', String(reg.workload));
    }
  });

  it('leaves no orphan when weft run alone is SIGKILLed: app group and proxy gone, endpoint removed', async (t) => {
    // A shell-wrapped app: the shell is the app `weft run` started, the server is its child.
    const run = startRun(['--service', 'books'], ['sh', '-c', 'node "$0" books-4; echo unreachable', APP]);
    const reg = await registered(run);
    const app = await appListening(run);
    const shellPid = await eventually(() => {
      const e = run.logs.find((l) => l.msg === 'app started');
      assert.ok(e, 'no "app started" line yet');
      return Number(e.pid);
    });
    const proxyPid = Number(reg.proxyPid);
    const svcPort = (await api.get('Service', 'default', 'books'))!.spec.ports[0].port;
    const watch = watchEndpoints(`books:${svcPort}`);
    try {
      await eventually(() => assert.ok(watch.addrs.has(String(reg.inbound))));
      assert.notEqual(shellPid, app.pid, 'the server runs under the shell');
      for (const [what, pid] of [
        ['shell', shellPid],
        ['server', app.pid],
        ['proxy', proxyPid],
      ] as const)
        assert.ok(isProcessAlive(pid), `the ${what} (pid ${pid}) runs before the SIGKILL`);
      run.child.kill('SIGKILL');
      const [appMs, proxyMs, removedMs] = await Promise.all([
        msUntil(() => !isProcessRunning(shellPid) && !isProcessRunning(app.pid)),
        msUntil(() => !isProcessRunning(proxyPid)),
        msUntil(() => !watch.addrs.has(String(reg.inbound))),
      ]);
      t.diagnostic(
        `after SIGKILL of weft run: app group gone in ${appMs.toFixed(0)} ms, proxy in ${proxyMs.toFixed(0)} ms, endpoint removed in ${removedMs.toFixed(0)} ms`,
      );
      assert.ok(appMs < ORPHAN_BOUND_MS, `the app still ran ${appMs} ms after the SIGKILL`);
      assert.ok(proxyMs < ORPHAN_BOUND_MS, `the proxy still ran ${proxyMs} ms after the SIGKILL`);
      assert.ok(removedMs < REMOVAL_BOUND_MS, `endpoint still listed after ${removedMs} ms`);
    } finally {
      watch.close();
      for (const pid of [shellPid, app.pid, proxyPid]) if (isProcessAlive(pid)) process.kill(pid, 'SIGKILL');
      await api.delete('Workload', 'default', String(reg.workload));
    }
  });

  it('gives two replicas started without --port different app ports', async () => {
    const a = startRun(['--service', 'authors'], ['node', APP, 'authors-a']);
    const b = startRun(['--service', 'authors'], ['node', APP, 'authors-b']);
    const [ra, rb] = await Promise.all([registered(a), registered(b)]);
    assert.notEqual(ra.appPort, rb.appPort);
    await Promise.all([appListening(a), appListening(b)]);
    const svcPort = (await api.get('Service', 'default', 'authors'))!.spec.ports[0].port;
    // Both replicas serve the one Service port through their proxies.
    const seen = new Set<unknown>();
    await eventually(async () => {
      seen.add((await getThrough(`authors:${svcPort}`)).name);
      assert.deepEqual([...seen].sort(), ['authors-a', 'authors-b']);
    });
    a.child.kill('SIGTERM');
    b.child.kill('SIGTERM');
    assert.deepEqual(await Promise.all([a.exited, b.exited]), [
      { code: 0, signal: null },
      { code: 0, signal: null },
    ]);
  });
});
