/**
 * `weft demo`: the control plane and a small sample application, each service in the mesh through
 * `weft run` (DESIGN.md §8), plus a traffic generator, until Ctrl-C/SIGTERM.
 *
 *   traffic --HTTP/1.1--> web --HTTP/1.1--> books (2 replicas, ~10% of requests fail with 500)
 *                             \--gRPC-----> authors
 *
 * The control plane runs in this process (state in `.weft/demo` unless `--state`). Every service
 * is a `weft run` child (its sidecar proxy, then the app from dist/demo/apps/). Once all are
 * registered it prints one JSON line (`{"msg":"demo ready",...}`, with every pid it started) and
 * what to look at. On SIGINT/SIGTERM it stops the traffic generator, then the other services, then
 * the control plane, and resolves 0. A second signal kills whatever is left at once.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import {
  loadControlConfig,
  type RunningControlPlane,
  startControlPlane,
} from '../src/control/control-plane.js';
import { formatHostPort, type HostPort, parseHostPort } from '../src/lib/addr.js';
import { type ApiClient, newApiClient } from '../src/lib/api-client.js';
import { newLogger } from '../src/lib/log.js';
import { WEFT_API_VERSION } from '../src/store/resource.js';
import { APPS_DIR, PARENT_WATCH, SERVICE_PORTS, WEFT_BIN } from './paths.js';

export interface DemoOptions {
  /** State directory of the control plane's store. */
  readonly state: string;
  readonly apiAddr: HostPort;
  readonly destinationAddr: HostPort;
  /** Requests per second of the traffic generator. */
  readonly rate: number;
  /** Fraction of `books` requests that fail with 500. */
  readonly booksFailureRate: number;
}

export const DEFAULT_DEMO_STATE = path.join('.weft', 'demo');

/** How long the services get to register and start. */
const START_TIMEOUT_MS = 30_000;
/** How long the traffic generator, then the other services, get to stop before SIGKILL. */
const TRAFFIC_STOP_MS = 4_000;
const SERVICES_STOP_MS = 10_000;
const DEMO_SERVICES = ['web', 'books', 'authors', 'traffic'];

interface Member {
  /** `books-1`: what its output is prefixed with. */
  readonly label: string;
  readonly service: string;
  readonly child: ChildProcess;
  readonly exited: Promise<void>;
  /** The `weft run` "workload registered" line. */
  registered?: Record<string, unknown>;
  /** The app's pid, from its first JSON line on stdout. */
  appPid?: number;
}

export async function runDemo(opts: DemoOptions): Promise<number> {
  mkdirSync(opts.state, { recursive: true });
  const out = (s: string) => process.stdout.write(s);
  const note = (s: string) => process.stderr.write(`[demo] ${s}\n`);

  // Signals from the very start: a Ctrl-C during start-up stops what has been started so far.
  let stopRequested: () => void = () => {};
  const stop = new Promise<void>((resolve) => (stopRequested = resolve));
  let signals = 0;
  const members: Member[] = [];
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals === 1) note(`${signal}: stopping everything`);
    else {
      note(`${signal} again: killing what is left`);
      for (const m of members) killMember(m);
    }
    stopRequested();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  let control: RunningControlPlane;
  try {
    control = await startControlPlane(
      loadControlConfig({
        WEFT_CONTROL_STATE: opts.state,
        WEFT_CONTROL_API_ADDR: formatHostPort(opts.apiAddr),
        WEFT_CONTROL_DESTINATION_ADDR: formatHostPort(opts.destinationAddr),
        // The demo's `weft run`s learn the Identity address from the API: any free port will do.
        WEFT_CONTROL_IDENTITY_ADDR: '127.0.0.1:0',
        WEFT_CONTROL_SHUTDOWN_GRACE_MS: '1000',
        WEFT_CONTROL_LOG_LEVEL: 'warn',
      }),
      newLogger('warn', { component: 'control' }),
    );
  } catch (err) {
    note(
      `could not start the control plane: ${(err as Error).message} (is another \`weft up\` or demo running? --api-addr, --destination-addr and --state choose others)`,
    );
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    return 1;
  }
  const { api: apiAddr, destination } = control.addresses;
  note(
    `control plane up: API http://${apiAddr}, destination ${destination}, state ${path.resolve(opts.state)}`,
  );
  const api = newApiClient(parseHostPort(apiAddr));

  let stopping = false;
  const startMember = (label: string, service: string, app: string, env: Record<string, string> = {}) => {
    const child = spawn(
      process.execPath,
      [
        // If this process dies (even SIGKILL), the pipe on the child's stdin closes and parent-watch
        // sends it SIGTERM: it stops its app and its proxy as on Ctrl-C, and nothing is left behind.
        '--import',
        PARENT_WATCH,
        WEFT_BIN,
        'run',
        '--service',
        service,
        '--api-addr',
        apiAddr,
        '--destination-addr',
        destination,
        '--',
        process.execPath,
        path.join(APPS_DIR, `${app}.js`),
      ],
      { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] },
    );
    const member: Member = {
      label,
      service,
      child,
      exited: new Promise((resolve) => {
        child.once('exit', (code, signal) => {
          if (!stopping) note(`${label} exited unexpectedly (${code ?? signal})`);
          resolve();
        });
        child.once('error', (err) => {
          note(`${label} could not start: ${err.message}`);
          resolve();
        });
      }),
    };
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (member.appPid === undefined && line.startsWith('{')) {
        const pid = parseJson(line)?.pid;
        if (typeof pid === 'number') member.appPid = pid;
      }
      out(`[${label}] ${line}\n`);
    });
    createInterface({ input: child.stderr! }).on('line', (line) => {
      const entry = line.startsWith('{') ? parseJson(line) : undefined;
      if (entry?.msg === 'workload registered') {
        member.registered = entry;
        note(
          `${label}: workload ${entry.workload} registered (app port ${entry.appPort}, proxy pid ${entry.proxyPid}, admin http://${entry.admin})`,
        );
      }
      // Info lines (the sidecar's and weft run's) are summarized above; warnings and errors are shown.
      if (!entry || (entry.level !== 'info' && entry.level !== 'debug'))
        process.stderr.write(`[${label}] ${line}\n`);
    });
    members.push(member);
    return member;
  };

  try {
    await prepareServices(api);
    if (!stopped(signals)) {
      const books = { DEMO_BOOKS_FAILURE_RATE: String(opts.booksFailureRate) };
      startMember('authors', 'authors', 'authors');
      startMember('books-1', 'books', 'books', books);
      startMember('books-2', 'books', 'books', books);
      startMember('web', 'web', 'web');
      await untilStarted(members, stop);
    }
    if (!stopped(signals)) {
      startMember('traffic', 'traffic', 'traffic', { DEMO_RATE: String(opts.rate) });
      await untilStarted(members, stop);
    }
    if (!stopped(signals)) {
      out(`${JSON.stringify(readyLine(control, opts.state, members))}\n`);
      out(guide(control, members, opts));
      await stop;
    }
  } catch (err) {
    note(`failed: ${(err as Error).message}`);
    process.exitCode = 1;
  }

  stopping = true;
  // Callers first, so the services they call see no errors from the shutdown itself.
  await stopMembers(
    members.filter((m) => m.service === 'traffic'),
    TRAFFIC_STOP_MS,
  );
  await stopMembers(
    members.filter((m) => m.service !== 'traffic'),
    SERVICES_STOP_MS,
  );
  await control.shutdown();
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  note('stopped');
  return process.exitCode === 1 ? 1 : 0;
}

function stopped(signals: number): boolean {
  return signals > 0;
}

function parseJson(line: string): Record<string, unknown> | undefined {
  try {
    const v = JSON.parse(line) as unknown;
    return typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Declares the demo's Services with fixed ports (clients call `books:7002`; each replica's app
 * port is picked by `weft run`), and removes Workloads a previous demo left behind (killed before
 * it could deregister them).
 */
async function prepareServices(api: ApiClient): Promise<void> {
  for (const w of (await api.list('Workload', 'default')).items)
    if (DEMO_SERVICES.includes(String(w.spec.service)))
      await api.delete('Workload', 'default', w.metadata.name);
  await api.apply(
    Object.entries(SERVICE_PORTS).map(([name, port]) => ({
      apiVersion: WEFT_API_VERSION,
      kind: 'Service',
      metadata: { name, namespace: 'default' },
      spec: { ports: [{ port }] },
    })),
  );
}

/** Resolves once every member has registered and its app has said its pid; rejects on a death or the deadline. */
async function untilStarted(members: readonly Member[], stop: Promise<void>): Promise<void> {
  let stopRequested = false;
  void stop.then(() => (stopRequested = true));
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (stopRequested) return;
    const dead = members.find((m) => m.child.exitCode !== null || m.child.signalCode !== null);
    if (dead) throw new Error(`${dead.label} exited during start-up (see its output above)`);
    const waiting = members.filter((m) => !m.registered || m.appPid === undefined);
    if (waiting.length === 0) return;
    if (Date.now() > deadline)
      throw new Error(`not started after ${START_TIMEOUT_MS} ms: ${waiting.map((m) => m.label).join(', ')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** SIGTERM (forwarded by `weft run` to the app); after `graceMs` SIGKILL to run, proxy and app. */
async function stopMembers(members: readonly Member[], graceMs: number): Promise<void> {
  for (const m of members) if (isRunning(m.child)) m.child.kill('SIGTERM');
  const all = Promise.all(members.map((m) => m.exited));
  let timer: NodeJS.Timeout | undefined;
  const late = await Promise.race([
    all.then(() => false),
    new Promise<boolean>((r) => (timer = setTimeout(() => r(true), graceMs))),
  ]);
  clearTimeout(timer);
  if (late) {
    for (const m of members) killMember(m);
    await all;
  }
  // `weft run` waits for its proxy and app, but a killed one may have left them behind.
  for (const m of members) for (const pid of pidsOf(m)) killPid(pid);
}

function killMember(m: Member): void {
  if (isRunning(m.child)) m.child.kill('SIGKILL');
  for (const pid of pidsOf(m)) killPid(pid);
}

function pidsOf(m: Member): number[] {
  const proxyPid = Number(m.registered?.proxyPid);
  return [proxyPid, m.appPid ?? 0].filter((p) => Number.isInteger(p) && p > 0);
}

function killPid(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

function isRunning(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

/** The machine-readable summary: addresses and every process the demo started. */
function readyLine(control: RunningControlPlane, state: string, members: readonly Member[]) {
  return {
    msg: 'demo ready',
    api: control.addresses.api,
    destination: control.addresses.destination,
    state: path.resolve(state),
    pid: process.pid,
    members: members.map((m) => ({
      label: m.label,
      service: m.service,
      workload: m.registered?.workload,
      runPid: m.child.pid,
      proxyPid: m.registered?.proxyPid,
      appPid: m.appPid,
      appPort: m.registered?.appPort,
      inbound: m.registered?.inbound,
      outbound: m.registered?.outbound,
      admin: m.registered?.admin,
    })),
  };
}

/** What a person reads: the picture, and what to run to look at it. */
function guide(control: RunningControlPlane, members: readonly Member[], opts: DemoOptions): string {
  const api = control.addresses.api;
  const web = members.find((m) => m.service === 'web')?.registered;
  const traffic = members.find((m) => m.service === 'traffic')?.registered;
  const weftGet = `node bin/weft.js get workloads -o wide --api-addr ${api}`;
  const via = String(traffic?.outbound ?? web?.outbound);
  const pct = Math.round(opts.booksFailureRate * 100);
  return [
    '',
    'Weft demo is running:',
    `  traffic (${opts.rate} req/s) -> web:${SERVICE_PORTS.web} -> books:${SERVICE_PORTS.books} (HTTP/1.1, 2 replicas, ~${pct}% fail with 500)`,
    `                              \\-> authors:${SERVICE_PORTS.authors} (gRPC)`,
    "Each arrow goes through two proxies: the caller's outbound and the callee's inbound.",
    '',
    'Look at:',
    `  ${weftGet}`,
    `  curl -s -x http://${via} http://web:${SERVICE_PORTS.web}/          # web, through a proxy (HTTP_PROXY style)`,
    `  curl -s -x http://${via} http://books:${SERVICE_PORTS.books}/books     # books, balanced over its replicas`,
    '  Each proxy\'s metrics (request_total, response_total{classification="failure"}, latencies):',
    ...members.map(
      (m) =>
        `    ${m.label.padEnd(8)} curl -s http://${String(m.registered?.admin)}/metrics | grep -E '^(request|response)_total'`,
    ),
    '',
    'Ctrl-C stops everything.',
    '',
  ].join('\n');
}
