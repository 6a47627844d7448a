/**
 * `weft run`'s lifecycle (DESIGN.md §8): Service, sidecar, Workload, then the app; signals go
 * to the app; when the app exits the Workload is deleted and the proxy drains; when the proxy
 * dies first the Workload is deleted and the app stopped. A finished run leaves nothing running.
 * The app leads its own process group, so a shell-wrapped app's children get the same signals,
 * and a watchdog (app-watchdog.ts) stops that group if `weft run` itself is killed.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { constants } from 'node:os';
import { formatHostPort } from '../../lib/addr.js';
import { type ApiClient, newApiClient } from '../../lib/api-client.js';
import type { Logger } from '../../lib/log.js';
import { appEnv } from './app-env.js';
import { type AppWatchdog, startAppWatchdog } from './app-watchdog.js';
import { pickFreePort } from './free-port.js';
import { type ProxyChild, startProxyChild } from './proxy-child.js';
import type { RunConfig } from './run-config.js';
import { prepareWorkloadIdentity, type WorkloadIdentity } from './workload-identity.js';
import { ensureService, newWorkloadName, registerWorkload } from './workload-registration.js';

/** The proxy's default shutdown grace (30 s) and a margin; then it is killed. */
const PROXY_DRAIN_TIMEOUT_MS = 35_000;
/** How long an app gets after SIGTERM when its proxy died; then SIGKILL. */
const APP_STOP_TIMEOUT_MS = 5_000;
/** Exit code of `weft run` when its proxy dies before the app. */
export const EXIT_PROXY_DIED = 70;
/** After deregistering on SIGTERM, how long client proxies get to see it (they see it in ~10-100 ms). */
const DEREGISTER_SETTLE_MS = 500;
const FORWARDED_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

type Exit = { code: number | null; signal: NodeJS.Signals | null };

/** Runs `config.command` in the mesh; resolves with the exit code `weft run` should exit with. */
export async function runInMesh(config: RunConfig, log: Logger): Promise<number> {
  // The token and trust bundle for the proxy, in a private directory removed when the run ends.
  const identity = await prepareWorkloadIdentity(
    config.apiAddr,
    config.namespace,
    config.account,
    config.identityAddr,
  );
  try {
    return await runWithIdentity(config, log, identity);
  } finally {
    await identity.remove();
  }
}

async function runWithIdentity(config: RunConfig, log: Logger, identity: WorkloadIdentity): Promise<number> {
  const api = newApiClient(config.apiAddr);
  const appPort = config.port ?? (await pickFreePort());
  const created = await ensureService(api, config.namespace, config.service, config.port ?? appPort);
  if (created) log.info('service created', { service: config.service, port: config.port ?? appPort });

  const proxy = await startProxyChild({
    appPort,
    destinationAddr: config.destinationAddr,
    upstreams: config.upstreams,
    logLevel: config.proxyLogLevel,
    identity,
  });
  // The proxy reads both files before its ready line (docs/identity.md): the token leaves the disk now.
  await identity.remove();
  const workload = newWorkloadName(config.service);
  try {
    await registerWorkload(api, workload, {
      service: config.service,
      namespace: config.namespace,
      inbound: proxy.inbound,
      admin: proxy.admin,
      identity: identity.identity,
    });
  } catch (err) {
    await stopProxy(proxy, log);
    throw err;
  }
  log.info('workload registered', {
    workload,
    namespace: config.namespace,
    service: config.service,
    appPort,
    proxyPid: proxy.pid,
    inbound: proxy.inbound,
    outbound: proxy.outbound,
    admin: proxy.admin,
    destination: formatHostPort(config.destinationAddr),
    identity: identity.identity,
  });
  let deregistering: Promise<void> | undefined;
  const deregister = () => (deregistering ??= deleteWorkload(api, config.namespace, workload, log));

  // detached: the app leads a new process group (and session); signals go to the whole group.
  const app = spawn(config.command[0], config.command.slice(1), {
    env: appEnv(process.env, { appPort, outbound: proxy.outbound, upstreams: proxy.upstreams }),
    stdio: 'inherit',
    detached: true,
  });
  // Started in the same tick as the app: there is no moment when a SIGKILL of `weft run` orphans it.
  const watchdog: AppWatchdog | undefined = app.pid === undefined ? undefined : startAppWatchdog(app.pid);
  if (app.pid !== undefined) log.info('app started', { pid: app.pid, watchdogPid: watchdog?.pid });
  const appExited = new Promise<Exit | Error>((resolve) => {
    app.once('exit', (code, signal) => resolve({ code, signal }));
    app.once('error', resolve);
  });
  // SIGTERM is how a replica is scaled down: leave discovery first and give client proxies a
  // moment to stop picking this endpoint, then let the app drain. Other signals go at once.
  const forward = (signal: NodeJS.Signals) => {
    if (signal !== 'SIGTERM') return signalGroup(app, signal);
    void deregister().then(() => setTimeout(() => signalGroup(app, 'SIGTERM'), DEREGISTER_SETTLE_MS));
  };
  for (const s of FORWARDED_SIGNALS) process.on(s, forward);
  try {
    const first = await Promise.race([
      appExited.then((r) => ({ who: 'app' as const, r })),
      proxy.exited.then((r) => ({ who: 'proxy' as const, r })),
    ]);
    if (first.who === 'proxy') {
      log.error('the proxy exited before the app; stopping the app', {
        workload,
        proxyPid: proxy.pid,
        code: first.r.code,
        signal: first.r.signal,
      });
      await deregister();
      await stopApp(app, appExited);
      watchdog?.release();
      return EXIT_PROXY_DIED;
    }
    // Whatever the app left running in its group is swept now, not after the proxy's drain.
    watchdog?.release();
    await deregister();
    await stopProxy(proxy, log);
    const r = first.r;
    if (r instanceof Error) {
      log.error('the app could not be started', { command: config.command[0], error: r.message });
      return (r as NodeJS.ErrnoException).code === 'ENOENT' ? 127 : 126;
    }
    return r.code ?? 128 + (constants.signals[r.signal as NodeJS.Signals] ?? 0);
  } finally {
    for (const s of FORWARDED_SIGNALS) process.off(s, forward);
    watchdog?.release();
  }
}

async function deleteWorkload(api: ApiClient, namespace: string, name: string, log: Logger): Promise<void> {
  try {
    await api.delete('Workload', namespace, name);
    log.info('workload deregistered', { workload: name, namespace });
  } catch (err) {
    // Its endpoint still leaves discovery: the control plane's liveness probe fails once the proxy is gone.
    log.warn('could not deregister the workload', { workload: name, error: (err as Error).message });
  }
}

/** SIGTERM, wait for the drain, SIGKILL after PROXY_DRAIN_TIMEOUT_MS. */
async function stopProxy(proxy: ProxyChild, log: Logger): Promise<void> {
  proxy.child.kill('SIGTERM');
  if (await settlesWithin(proxy.exited, PROXY_DRAIN_TIMEOUT_MS)) return;
  log.warn('the proxy did not drain in time; killing it', { proxyPid: proxy.pid });
  proxy.child.kill('SIGKILL');
  await proxy.exited;
}

/** SIGTERM to the app's group, SIGKILL after APP_STOP_TIMEOUT_MS. */
async function stopApp(app: ChildProcess, exited: Promise<unknown>): Promise<void> {
  if (app.exitCode !== null || app.signalCode !== null) return;
  signalGroup(app, 'SIGTERM');
  if (await settlesWithin(exited, APP_STOP_TIMEOUT_MS)) return;
  signalGroup(app, 'SIGKILL');
  await exited;
}

/**
 * Sends `signal` to the app's process group (the app leads it: spawned detached), as a terminal
 * would to a foreground job. Only while the app has not been reaped: until then its pid, and so
 * the group id, cannot name anyone else.
 */
function signalGroup(app: ChildProcess, signal: NodeJS.Signals): void {
  if (app.pid === undefined || app.exitCode !== null || app.signalCode !== null) return;
  try {
    process.kill(-app.pid, signal);
  } catch {
    app.kill(signal); // the group is gone but the leader is not reaped yet: harmless either way
  }
}

function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    void p.then(() => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}
