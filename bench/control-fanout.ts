/**
 * Control-plane fan-out benchmark (issue 3's Performance section, issue 5's control-plane
 * scenarios): how long does one endpoint change take to reach every proxy subscribed to its
 * service, and what does the control plane cost in memory and CPU while it serves them?
 *
 * Starts `weft control` as a child process (temporary state, port-0 addresses), creates
 * `--services` Services with 2 Workloads each through the HTTP API, opens `--subscribers`
 * Destination Get streams (spread evenly over the services, one connection each) from
 * `--processes` child processes (bench/fanout-subscribers.ts), waits for every initial state, then
 * adds `--changes` Workloads one at a time to random services and waits each time until every
 * subscriber of that service has seen it (after `--warmup-changes` made the same way, reported
 * apart; `--pause-ms` idles before each measured change). Latency = time a subscriber's process
 * saw the address - time just before the parent sent the PUT /api/v1/apply. Prints a Markdown
 * table and writes JSON to bench/results/control-fanout-<timestamp>.json. Everything is bounded by `--timeout-ms`, and
 * every child is killed on exit.
 *
 *   npm run bench:control [-- --subscribers 10000]
 *
 * `--control-node-flag` and `--subscriber-node-flag` (repeatable) pass flags to the `node` of the
 * control plane or of the subscriber processes, e.g. `--control-node-flag=--cpu-prof
 * --control-node-flag=--cpu-prof-dir=/tmp/prof`; the control plane then gets SIGTERM (not SIGKILL)
 * at the end so that it can write its profile.
 */
import { type ChildProcess, fork, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { parseHostPort } from '../src/lib/addr.js';
import { newApiClient } from '../src/lib/api-client.js';
import { onceLine } from '../test/support/eventually.js';
import { REPO_ROOT, WEFT_BIN } from '../test/support/paths.js';
import { type FanoutMeasurements, renderTable, summarize } from './fanout-report.js';
import { type SubscribeRequest, type SubscriberReport, sharedNowMs } from './fanout-subscribers.js';
import { readCpuSeconds, readMemory } from './proc-stats.js';

const { values: flags } = parseArgs({
  options: {
    subscribers: { type: 'string', default: '1000' },
    services: { type: 'string', default: '100' },
    changes: { type: 'string', default: '20' },
    'warmup-changes': { type: 'string', default: '5' },
    'pause-ms': { type: 'string', default: '0' },
    processes: { type: 'string' },
    'timeout-ms': { type: 'string', default: '120000' },
    'control-node-flag': { type: 'string', multiple: true, default: [] },
    'subscriber-node-flag': { type: 'string', multiple: true, default: [] },
  },
});
const CONTROL_NODE_FLAGS = flags['control-node-flag'] ?? [];
const SUBSCRIBER_NODE_FLAGS = flags['subscriber-node-flag'] ?? [];
const SUBSCRIBERS = Number(flags.subscribers);
const SERVICES = Number(flags.services);
const CHANGES = Number(flags.changes);
const WARMUP_CHANGES = Number(flags['warmup-changes']);
/** Idle time before each measured change: sporadic changes rather than back-to-back ones. */
const PAUSE_MS = Number(flags['pause-ms']);
/** 4 processes for 1,000 streams; at most 1,000 streams per process beyond that. */
const PROCESSES = Number(flags.processes ?? Math.max(4, Math.ceil(SUBSCRIBERS / 1000)));
const TIMEOUT_MS = Number(flags['timeout-ms']);
for (const [name, v] of Object.entries({ SUBSCRIBERS, SERVICES, CHANGES, PROCESSES, TIMEOUT_MS }))
  if (!Number.isInteger(v) || v < 1) throw new Error(`${name.toLowerCase()} must be a positive integer`);
for (const [name, v] of Object.entries({ 'warmup-changes': WARMUP_CHANGES, 'pause-ms': PAUSE_MS }))
  if (!Number.isInteger(v) || v < 0) throw new Error(`--${name} must be a non-negative integer`);
if (SUBSCRIBERS % SERVICES !== 0) throw new Error('--subscribers must be a multiple of --services');
const PER_SERVICE = SUBSCRIBERS / SERVICES;
/** How long one change may take to reach every subscriber before the run fails. */
const CHANGE_DEADLINE_MS = 10_000;
const CHANGE_PREFIX = '10.2.';

const children: ChildProcess[] = [];
const stateDir = mkdtempSync(join(tmpdir(), 'weft-bench-fanout-'));
function killAll(): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  rmSync(stateDir, { recursive: true, force: true });
}
process.on('exit', killAll);
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => process.exit(130));
const overall = setTimeout(() => {
  process.stderr.write(`control-fanout: gave up after ${TIMEOUT_MS} ms\n`);
  process.exit(1);
}, TIMEOUT_MS);

const serviceName = (i: number) => `bench-svc-${i}`;
const workload = (name: string, service: string, address: string) => ({
  apiVersion: 'weft.io/v1alpha1',
  kind: 'Workload',
  metadata: { name },
  spec: { service, address, port: 8080 },
});

let controlChild: ChildProcess | undefined;

/** Resolves when `child` has exited, or after `ms`. */
function exited(child: ChildProcess, ms: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/**
 * With node flags given (a profile to write), lets every child exit on its own: the subscribers
 * when their IPC channel closes, then the control plane on SIGTERM. Otherwise the exit handler's
 * SIGKILL is enough.
 */
async function stopGracefully(): Promise<void> {
  if (CONTROL_NODE_FLAGS.length === 0 && SUBSCRIBER_NODE_FLAGS.length === 0) return;
  // An idle second after the changes, as before them, marks the change phase in a profile.
  await new Promise((r) => setTimeout(r, 1000));
  const subscribers = children.filter((c) => c !== controlChild);
  for (const c of subscribers) if (c.connected) c.disconnect();
  await Promise.all(subscribers.map((c) => exited(c, 10_000)));
  if (controlChild) {
    controlChild.kill('SIGTERM');
    await exited(controlChild, 15_000);
  }
}

/** Starts `weft control` and resolves with its pid and addresses from its ready line. */
async function startControl() {
  const child = spawn(process.execPath, [...CONTROL_NODE_FLAGS, WEFT_BIN, 'control'], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: {
      ...process.env,
      WEFT_CONTROL_STATE: stateDir,
      WEFT_CONTROL_DESTINATION_ADDR: '127.0.0.1:0',
      WEFT_CONTROL_API_ADDR: '127.0.0.1:0',
      WEFT_CONTROL_IDENTITY_ADDR: '127.0.0.1:0',
      WEFT_CONTROL_LOG_LEVEL: 'info',
    },
  });
  children.push(child);
  controlChild = child;
  const line = await onceLine(child.stderr, (l) => l.includes('"control plane ready"'), 20_000);
  const counts = { slowSubscribersDisconnected: 0 };
  // Keep draining its log; count disconnected slow subscribers, which would skew the figures.
  child.stderr.on('data', (c: Buffer) => {
    counts.slowSubscribersDisconnected += c.toString().split('slow subscriber disconnected').length - 1;
  });
  const ready = JSON.parse(line) as { destination: string; api: string };
  return { pid: child.pid!, destination: ready.destination, api: ready.api, counts };
}

/** Forks the subscriber processes; stream j subscribes to service j % SERVICES. */
function startSubscribers(destination: string, onReport: (r: SubscriberReport) => void) {
  const helper = join(dirname(fileURLToPath(import.meta.url)), 'fanout-subscribers.js');
  const perProcess: string[][] = Array.from({ length: PROCESSES }, () => []);
  for (let j = 0; j < SUBSCRIBERS; j++) {
    // The subscribers of one service are spread over the processes.
    perProcess[Math.floor(j / SERVICES) % PROCESSES].push(`${serviceName(j % SERVICES)}:8080`);
  }
  for (const authorities of perProcess) {
    const child = fork(helper, {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      execArgv: SUBSCRIBER_NODE_FLAGS,
    });
    children.push(child);
    child.on('message', onReport);
    child.on('exit', (code, signal) => {
      if (exiting) return;
      fatal.push(`a subscriber process exited early (code ${code}, signal ${signal})`);
      wakeWaiters();
    });
    const req: SubscribeRequest = {
      type: 'subscribe',
      destination,
      authorities,
      watchPrefix: CHANGE_PREFIX,
      maxConnecting: 100,
    };
    child.send(req);
  }
}

/** Problems that end the run (stream errors, a subscriber process gone); any one fails every wait. */
const fatal: string[] = [];

/** Resolves once `done()` holds, checked after every report; rejects after `ms` or on a fatal problem. */
function waitFor(what: string, ms: number, done: () => boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => finish(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    const finish = (err?: Error) => {
      clearTimeout(timer);
      waiters.delete(check);
      if (err) reject(err);
      else resolve();
    };
    const check = () => {
      if (fatal.length > 0)
        finish(new Error(`${fatal.length} failures, e.g. ${fatal.slice(0, 3).join('; ')}`));
      else if (done()) finish();
    };
    waiters.add(check);
    check();
  });
}
const waiters = new Set<() => void>();
const wakeWaiters = () => {
  for (const w of waiters) w();
};
let exiting = false;

async function main(): Promise<void> {
  const control = await startControl();
  const api = newApiClient(parseHostPort(control.api));
  const initial: unknown[] = [];
  for (let i = 0; i < SERVICES; i++) {
    initial.push({
      apiVersion: 'weft.io/v1alpha1',
      kind: 'Service',
      metadata: { name: serviceName(i) },
      spec: { ports: [{ port: 8080 }] },
    });
    for (const k of [1, 2]) initial.push(workload(`bench-w-${i}-${k}`, serviceName(i), `10.1.${i}.${k}`));
  }
  await api.apply(initial);
  const unsubscribed = readMemory(control.pid);

  let readyStreams = 0;
  const seenAt = new Map<string, number[]>();
  const subscribeStartMs = sharedNowMs();
  startSubscribers(control.destination, (r) => {
    if (r.type === 'ready') readyStreams += r.streams;
    else if (r.type === 'seen') {
      const list = seenAt.get(r.addr);
      if (list) list.push(...r.atMs);
      else seenAt.set(r.addr, [...r.atMs]);
    } else fatal.push(`stream ${r.authority}: ${r.message}`);
    wakeWaiters();
  });
  // 10,000 streams take 40 s to open on a quiet 2-core machine, longer on a busy one.
  await waitFor(
    'every initial state',
    Math.max(60_000, SUBSCRIBERS * 12),
    () => readyStreams === SUBSCRIBERS,
  );
  const subscribeMs = sharedNowMs() - subscribeStartMs;
  // Let connection set-up garbage settle before the idle reading.
  await new Promise((r) => setTimeout(r, 1000));
  const idle = readMemory(control.pid);

  /** Change `i`: adds one Workload and waits until every subscriber of its service has seen it. */
  const change = async (i: number): Promise<FanoutMeasurements['changes'][number]> => {
    const service = Math.floor(Math.random() * SERVICES);
    const addr = `${CHANGE_PREFIX}${i >> 8}.${(i & 255) + 1}`;
    const sentAtMs = sharedNowMs();
    await api.apply([workload(`bench-change-${i}`, serviceName(service), addr)]);
    const appliedMs = sharedNowMs() - sentAtMs;
    const key = `${addr}:8080`;
    await waitFor(
      `change ${i} to reach ${PER_SERVICE} subscribers`,
      CHANGE_DEADLINE_MS,
      () => (seenAt.get(key)?.length ?? 0) >= PER_SERVICE,
    );
    return {
      service: serviceName(service),
      applyMs: appliedMs,
      latenciesMs: seenAt.get(key)!.map((t) => t - sentAtMs),
    };
  };
  // The first changes run code that has not been optimized yet in the control plane and in the
  // subscriber processes (a long-running control plane and proxies are past that): they are
  // measured and reported apart, not mixed into the steady-state figures.
  const subscriberPids = children.filter((c) => c !== controlChild).map((c) => c.pid!);
  const subscribersCpu = () => subscriberPids.reduce((sum, pid) => sum + readCpuSeconds(pid), 0);
  const warmupCpuBefore = [readCpuSeconds(control.pid), subscribersCpu()];
  const warmupChanges: FanoutMeasurements['changes'][number][] = [];
  for (let i = 0; i < WARMUP_CHANGES; i++) warmupChanges.push(await change(i));
  const warmupCpuSeconds = {
    control: readCpuSeconds(control.pid) - warmupCpuBefore[0],
    subscribers: subscribersCpu() - warmupCpuBefore[1],
  };

  const cpuBefore = readCpuSeconds(control.pid);
  const subscriberCpuBefore = subscribersCpu();
  const changes: FanoutMeasurements['changes'][number][] = [];
  for (let i = 0; i < CHANGES; i++) {
    if (PAUSE_MS > 0) await new Promise((r) => setTimeout(r, PAUSE_MS));
    changes.push(await change(WARMUP_CHANGES + i));
  }
  // With pauses, this includes the idle work of the pauses (keepalives, timers).
  const cpuSeconds = readCpuSeconds(control.pid) - cpuBefore;
  const subscriberCpuSeconds = subscribersCpu() - subscriberCpuBefore;
  const end = readMemory(control.pid);

  const result = summarize({
    subscribers: SUBSCRIBERS,
    services: SERVICES,
    processes: PROCESSES,
    pauseMs: PAUSE_MS,
    subscribeMs,
    unsubscribed,
    idle,
    end,
    cpuSeconds,
    subscriberCpuSeconds,
    warmupChanges,
    warmupCpuSeconds,
    changes,
    slowSubscribersDisconnected: control.counts.slowSubscribersDisconnected,
  });
  const resultsDir = join(REPO_ROOT, 'bench', 'results');
  mkdirSync(resultsDir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '').replace('T', '-');
  const file = join(resultsDir, `control-fanout-${stamp}.json`);
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(`${renderTable(result)}\nJSON: ${file}\n`);
}

main().then(
  async () => {
    exiting = true;
    clearTimeout(overall);
    await stopGracefully();
    process.exit(0);
  },
  (err: unknown) => {
    exiting = true;
    process.stderr.write(`control-fanout: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
