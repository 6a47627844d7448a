/**
 * Runs the real `weft proxy` as a child process (docs/proxy-contract.md) and waits for its
 * "proxy ready" line. Every process started here is killed when the test process exits, even if
 * a test forgot to stop it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { stringify } from 'yaml';
import { WEFT_BIN } from './paths.js';

export interface StartProxyOptions {
  /** Flags after `proxy`. Each listen address defaults to 127.0.0.1:0 unless given here or in `env`. */
  args?: string[];
  /** Added to the inherited environment, from which every `WEFT_PROXY_*` variable is removed. */
  env?: Record<string, string>;
  /** How long to wait for "proxy ready" (default 15 s). */
  readyTimeoutMs?: number;
}

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ProxyProcess {
  /** "127.0.0.1:P" as reported in the ready line; undefined when that listener is disabled. */
  readonly outbound: string | undefined;
  readonly inbound: string | undefined;
  readonly admin: string | undefined;
  /** Upstream name → "127.0.0.1:P" (the `--upstream` listeners). */
  readonly upstreams: Readonly<Record<string, string>>;
  readonly pid: number;
  readonly child: ChildProcess;
  /** Every stderr line so far (JSON log lines and anything else), in order; grows while it runs. */
  readonly logs: string[];
  /** Every stdout line so far. */
  readonly stdout: string[];
  /** Settles when the process has exited (never rejects). */
  readonly exited: Promise<ExitStatus>;
  /** Parsed JSON stderr lines satisfying `predicate`, in order. */
  logEntries(predicate?: (entry: LogEntry) => boolean): LogEntry[];
  /** The first JSON stderr line (past or future) satisfying `predicate`; rejects on timeout or exit. */
  waitForLog(predicate: (entry: LogEntry) => boolean, timeoutMs?: number): Promise<LogEntry>;
  /** GET on the admin listener; resolves whatever the status. */
  adminGet(path: string): Promise<{ status: number; body: string }>;
  /** The body of GET /metrics on the admin listener; rejects unless the status is 200. */
  metrics(): Promise<string>;
  /** Sends `signal`, waits for the exit; sends SIGKILL if still running after `killAfterMs` (10 s). */
  stop(signal?: NodeJS.Signals, killAfterMs?: number): Promise<ExitStatus>;
  /** SIGKILL now, without waiting (await `exited` for that). */
  kill(): void;
}

/** One JSON log line of the proxy. */
export type LogEntry = { msg?: string; level?: string } & Record<string, unknown>;

/** Why `startProxy` failed: the process exited first, or never became ready in time. */
export class ProxyStartError extends Error {
  constructor(
    readonly code: 'WEFT_TEST_PROXY_EXITED' | 'WEFT_TEST_PROXY_READY_TIMEOUT' | 'WEFT_TEST_PROXY_SPAWN',
    message: string,
    readonly logs: string[],
    readonly exit?: ExitStatus,
    options?: ErrorOptions,
  ) {
    super(`${message}\n--- proxy stderr ---\n${logs.join('\n')}`, options);
    this.name = 'ProxyStartError';
  }
}

const LISTEN_FLAGS = [
  ['--outbound-listen-addr', 'WEFT_PROXY_OUTBOUND_LISTEN_ADDR'],
  ['--inbound-listen-addr', 'WEFT_PROXY_INBOUND_LISTEN_ADDR'],
  ['--admin-listen-addr', 'WEFT_PROXY_ADMIN_LISTEN_ADDR'],
] as const;

const live = new Set<ChildProcess>();

/**
 * The test-process variable that makes startMeshPair's client proxy carry HTTP/1 to its peer
 * with the given `--mesh-http1-transport` (h2 or http1), so one suite covers both transports.
 */
export const MESH_TRANSPORT_ENV = 'WEFT_TEST_MESH_HTTP1_TRANSPORT';
const killLive = () => {
  for (const child of live) child.kill('SIGKILL');
};
process.on('exit', killLive);
// 'exit' does not run when a signal ends the test process: kill, then let the signal act as usual.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    killLive();
    process.kill(process.pid, signal);
  });
}

/** Starts `node bin/weft.js proxy ...args` and resolves once it reports every listener bound. */
export async function startProxy(opts: StartProxyOptions = {}): Promise<ProxyProcess> {
  const given = opts.args ?? [];
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && !k.startsWith('WEFT_PROXY_')) env[k] = v;
  }
  Object.assign(env, opts.env);
  const defaults: string[] = [];
  for (const [flag, envName] of LISTEN_FLAGS) {
    const inArgs = given.some((a) => a === flag || a.startsWith(`${flag}=`));
    if (!inArgs && opts.env?.[envName] === undefined) defaults.push(flag, '127.0.0.1:0');
  }
  const child = spawn(process.execPath, [WEFT_BIN, 'proxy', ...defaults, ...given], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  const logs: string[] = [];
  const stdout: string[] = [];
  const entries: LogEntry[] = [];
  const lineWaiters = new Set<() => void>();
  const exited = new Promise<ExitStatus>((resolve) => {
    child.once('exit', (code, signal) => {
      live.delete(child);
      resolve({ code, signal });
    });
  });
  createInterface({ input: child.stdout!, crlfDelay: Number.POSITIVE_INFINITY }).on('line', (l) => {
    stdout.push(l);
  });
  const stderr = createInterface({ input: child.stderr!, crlfDelay: Number.POSITIVE_INFINITY });
  stderr.on('line', (l) => {
    logs.push(l);
    const entry = parseJsonLine(l);
    if (entry) entries.push(entry);
    for (const wake of lineWaiters) wake();
  });
  // Settles after the last stderr line was handled: only then is "no such line" certain.
  let stderrEnded = false;
  const stderrDone = new Promise<void>((resolve) => stderr.once('close', resolve)).then(() => {
    stderrEnded = true;
  });

  const waitForLog = (predicate: (e: LogEntry) => boolean, timeoutMs = 10_000): Promise<LogEntry> =>
    new Promise<LogEntry>((resolve, reject) => {
      let checked = 0;
      const check = () => {
        for (; checked < entries.length; checked++) {
          if (predicate(entries[checked])) return done(null, entries[checked]);
        }
      };
      const done = (err: Error | null, entry?: LogEntry) => {
        clearTimeout(timer);
        lineWaiters.delete(check);
        if (err) reject(err);
        else resolve(entry as LogEntry);
      };
      const timer = setTimeout(
        () => done(new Error(`no matching log line within ${timeoutMs} ms`)),
        timeoutMs,
      );
      lineWaiters.add(check);
      stderrDone.then(() => done(new Error('proxy exited without a matching log line')));
      check();
    });

  const readyTimeoutMs = opts.readyTimeoutMs ?? 15_000;
  let ready: LogEntry;
  try {
    ready = await Promise.race([
      waitForLog((e) => e.msg === 'proxy ready', readyTimeoutMs),
      // A lasting listener: a later 'error' (a failed kill) must not throw in the test process.
      new Promise<never>((_, reject) => child.on('error', reject)),
    ]);
  } catch (err) {
    if (child.pid === undefined) {
      live.delete(child);
      const reason = err instanceof Error ? err.message : String(err);
      throw new ProxyStartError(
        'WEFT_TEST_PROXY_SPAWN',
        `could not spawn the proxy: ${reason}`,
        logs,
        undefined,
        {
          cause: err,
        },
      );
    }
    const endedByItself = stderrEnded;
    child.kill('SIGKILL');
    const exit = await exited;
    await closedStreams(child);
    if (endedByItself) {
      const how = exit.signal ? `signal ${exit.signal}` : `code ${exit.code}`;
      throw new ProxyStartError('WEFT_TEST_PROXY_EXITED', `proxy exited (${how}) before ready`, logs, exit);
    }
    throw new ProxyStartError(
      'WEFT_TEST_PROXY_READY_TIMEOUT',
      `proxy not ready within ${readyTimeoutMs} ms`,
      logs,
      exit,
    );
  }

  const admin = optionalString(ready.admin);
  const adminGet = async (path: string) => {
    if (!admin) throw new Error('this proxy has no admin listener');
    const res = await fetch(`http://${admin}${path}`);
    return { status: res.status, body: await res.text() };
  };
  return {
    outbound: optionalString(ready.outbound),
    inbound: optionalString(ready.inbound),
    admin,
    upstreams: Object.freeze({ ...((ready.upstreams as Record<string, string> | undefined) ?? {}) }),
    pid: child.pid!,
    child,
    logs,
    stdout,
    exited,
    logEntries: (predicate = () => true) => entries.filter(predicate),
    waitForLog,
    adminGet,
    async metrics() {
      const { status, body } = await adminGet('/metrics');
      if (status !== 200) throw new Error(`GET /metrics answered ${status}: ${body}`);
      return body;
    },
    async stop(signal: NodeJS.Signals = 'SIGTERM', killAfterMs = 10_000) {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
      const status = await exited;
      clearTimeout(timer);
      await closedStreams(child);
      return status;
    },
    kill: () => {
      child.kill('SIGKILL');
    },
  };
}

/** One entry of a static destinations file (docs/proxy-contract.md). */
export interface Destination {
  authority: string;
  opaque?: boolean;
  endpoints: Array<{ address: string; meshed?: boolean; weight?: number; labels?: Record<string, string> }>;
}

/**
 * Writes a destinations file atomically (temporary file, then rename), the way editors and
 * Kubernetes volume updates replace files: a reloader must follow the path, not the inode.
 */
export async function writeDestinationsFile(path: string, destinations: Destination[]): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, stringify({ destinations }));
  await rename(tmp, path);
}

export interface MeshPairOptions {
  /** The `host:port` the client asks the outbound proxy for, e.g. `books:7002`. */
  authority: string;
  /** The local app behind the inbound proxy (`--app-port`). */
  appPort: number;
  /** Marks the destination opaque (no HTTP parsing) in the destinations file. */
  opaque?: boolean;
  inboundArgs?: string[];
  outboundArgs?: string[];
  /** Environment for both proxies (see `StartProxyOptions.env`). */
  env?: Record<string, string>;
}

export interface MeshPair {
  /** Serves the app: `--app-port appPort`. */
  inbound: ProxyProcess;
  /** What the client calls: `--destinations destinationsPath`, and `--inbound-listen-addr none` unless `outboundArgs` set it or `--app-port`. */
  outbound: ProxyProcess;
  /** The temporary destinations file; rewrite it with `writeDestinationsFile` to test reloads. */
  destinationsPath: string;
  /** The entry first written: `authority` → the inbound proxy, meshed. */
  destination: Destination;
  /** Stops both proxies (SIGTERM, then SIGKILL after 10 s) and removes the temporary files; idempotent. */
  cleanup(): Promise<void>;
}

/**
 * Starts an inbound proxy for `appPort`, then an outbound proxy whose destinations file maps
 * `authority` to that inbound proxy (meshed). If the second start fails, the first is stopped.
 */
export async function startMeshPair(opts: MeshPairOptions): Promise<MeshPair> {
  const dir = await mkdtemp(join(tmpdir(), 'weft-mesh-'));
  const destinationsPath = join(dir, 'destinations.yaml');
  const started: ProxyProcess[] = [];
  let cleaned: Promise<void> | undefined;
  const cleanup = () =>
    (cleaned ??= Promise.all(started.map((p) => p.stop())).then(() =>
      rm(dir, { recursive: true, force: true }),
    ));
  try {
    const inbound = await startProxy({
      args: ['--app-port', String(opts.appPort), ...(opts.inboundArgs ?? [])],
      env: opts.env,
    });
    started.push(inbound);
    if (!inbound.inbound) throw new Error('the inbound proxy reported no inbound listener');
    const destination: Destination = {
      authority: opts.authority,
      opaque: opts.opaque ?? false,
      endpoints: [{ address: inbound.inbound, meshed: true, weight: 1, labels: { pod: 'test-0' } }],
    };
    await writeDestinationsFile(destinationsPath, [destination]);
    const outboundArgs = opts.outboundArgs ?? [];
    // The client side has no app of its own, so no inbound listener unless the test asks for one.
    const noInbound = outboundArgs.some((a) => a.startsWith('--inbound-listen-addr') || a === '--app-port')
      ? []
      : ['--inbound-listen-addr', 'none'];
    // A suite re-run under the other mesh transport sets this (see test/*-mesh-h2.test.ts).
    const transport = process.env[MESH_TRANSPORT_ENV];
    const transportArgs =
      transport && !outboundArgs.includes('--mesh-http1-transport')
        ? ['--mesh-http1-transport', transport]
        : [];
    const outbound = await startProxy({
      args: ['--destinations', destinationsPath, ...noInbound, ...transportArgs, ...outboundArgs],
      env: opts.env,
    });
    started.push(outbound);
    return { inbound, outbound, destinationsPath, destination, cleanup };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

function parseJsonLine(line: string): LogEntry | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    const v: unknown = JSON.parse(line);
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as LogEntry) : undefined;
  } catch {
    return undefined;
  }
}

function optionalString(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/** Lets the last stderr lines arrive after an exit; bounded in case a grandchild holds the pipes. */
function closedStreams(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.stdout?.closed !== false && child.stderr?.closed !== false) return resolve();
    const timer = setTimeout(resolve, 1000);
    child.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}
