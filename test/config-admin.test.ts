/**
 * The `weft proxy` process contract around configuration and the admin listener
 * (docs/proxy-contract.md): every configuration problem reported at once with exit code 2 and
 * no port bound; flags over environment; /config, /log-level, /live, /ready, /shutdown.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { WEFT_BIN } from './support/paths.js';
import { type ProxyProcess, startProxy } from './support/proxy-process.js';

interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Ports among `watchPorts` that accepted a connection while the process ran. */
  boundPorts: number[];
}

/**
 * Runs `weft proxy ...args` to its end (killed after `timeoutMs`), with `env` as its only
 * WEFT_PROXY_* variables. While it runs, keeps trying to connect to each of `watchPorts`.
 */
function runProxyToExit(
  args: string[],
  env: Record<string, string>,
  watchPorts: number[],
  timeoutMs = 15_000,
): Promise<RunResult> {
  const childEnv: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && !k.startsWith('WEFT_PROXY_')) childEnv[k] = v;
  }
  Object.assign(childEnv, env);
  const child = spawn(process.execPath, [WEFT_BIN, 'proxy', ...args], {
    env: childEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c) => (stdout += c));
  child.stderr.on('data', (c) => (stderr += c));
  const bound = new Set<number>();
  let running = true;
  const probes = watchPorts.map(async (port) => {
    while (running) {
      if (await canConnect(port)) bound.add(port);
      await new Promise((r) => setTimeout(r, 5));
    }
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', async (code, signal) => {
      clearTimeout(timer);
      running = false;
      await Promise.all(probes);
      resolve({ code, signal, stdout, stderr, boundPorts: [...bound] });
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Ports free right now on 127.0.0.1, all different. */
async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<net.Server>((resolve, reject) => {
          const srv = net.createServer();
          srv.once('error', reject);
          srv.listen(0, '127.0.0.1', () => resolve(srv));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

/** Asserts each port can still be bound (nothing holds it). */
async function assertFree(ports: number[]): Promise<void> {
  for (const port of ports) {
    await new Promise<void>((resolve, reject) => {
      const srv = net.createServer();
      srv.once('error', (err) => reject(new Error(`port ${port} is taken: ${err.message}`)));
      srv.listen(port, '127.0.0.1', () => srv.close(() => resolve()));
    });
  }
}

async function admin(proxy: ProxyProcess, method: string, path: string, body?: string) {
  const res = await fetch(`http://${proxy.admin}${path}`, { method, body });
  return { status: res.status, body: await res.text() };
}

describe('configuration errors', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'weft-config-'));
  });
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('reports every bad setting in one message, exits 2, and binds no port', async () => {
    const [outPort, inPort, adminPort] = await freePorts(3);
    const r = await runProxyToExit(
      [
        '--outbound-listen-addr',
        `127.0.0.1:${outPort}`,
        '--inbound-listen-addr',
        `127.0.0.1:${inPort}`,
        '--admin-listen-addr',
        `127.0.0.1:${adminPort}`,
        '--max-header-bytes',
        '5',
      ],
      {
        WEFT_PROXY_DETECT_TIMEOUT_MS: 'soon',
        WEFT_PROXY_LOG_LEVEL: 'loud',
        WEFT_PROXY_OPAQUE_PORTS: '25,smtp',
        WEFT_PROXY_UPSTREAMS: 'books=notaport',
      },
      [outPort, inPort, adminPort],
    );
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stdout, '');
    assert.deepEqual(r.boundPorts, [], 'a port accepted connections');
    await assertFree([outPort, inPort, adminPort]);
    assert.equal(r.stderr.match(/invalid configuration/g)?.length, 1, `one message:\n${r.stderr}`);
    assert.ok(!r.stderr.includes('proxy ready'));
    assert.ok(!r.stderr.includes('    at '), `no stack trace:\n${r.stderr}`);
    for (const problem of [
      /WEFT_PROXY_MAX_HEADER_BYTES="5": expected an integer from 1024 to 1048576/,
      /WEFT_PROXY_DETECT_TIMEOUT_MS="soon": expected an integer/,
      /WEFT_PROXY_LOG_LEVEL="loud": expected one of error, warn, info, debug, trace/,
      /WEFT_PROXY_OPAQUE_PORTS="25,smtp": /,
      /WEFT_PROXY_UPSTREAMS="books=notaport": /,
      /WEFT_PROXY_APP_PORT: required while the inbound listener is enabled/,
    ]) {
      assert.match(r.stderr, problem);
    }
  });

  it('names the file, line and field of a bad destinations file, exits 2, and binds no port', async () => {
    const path = join(dir, 'destinations.yaml');
    await writeFile(
      path,
      [
        'destinations:',
        '  - authority: books:7002',
        '    endpoints:',
        '      - address: 127.0.0.1:4143',
        '        meshed: true',
        '      - address: books-1',
        '        weight: 1',
        '',
      ].join('\n'),
    );
    const [outPort, adminPort] = await freePorts(2);
    const args = [
      '--destinations',
      path,
      '--inbound-listen-addr',
      'none',
      '--outbound-listen-addr',
      `127.0.0.1:${outPort}`,
      '--admin-listen-addr',
      `127.0.0.1:${adminPort}`,
    ];
    const r = await runProxyToExit(args, {}, [outPort, adminPort]);
    assert.equal(r.code, 2, r.stderr);
    assert.deepEqual(r.boundPorts, []);
    await assertFree([outPort, adminPort]);
    assert.match(r.stderr, /invalid configuration/);
    assert.ok(
      r.stderr.includes(`${path}:6: destinations[0].endpoints[1].address: "books-1" has no valid port`),
      r.stderr,
    );
    assert.ok(!r.stderr.includes('    at '), `no stack trace:\n${r.stderr}`);

    // A file that is not there at all is a configuration problem too, not a crash.
    const missing = await runProxyToExit(['--destinations', join(dir, 'nope.yaml'), ...args.slice(2)], {}, [
      outPort,
      adminPort,
    ]);
    assert.equal(missing.code, 2, missing.stderr);
    assert.ok(
      missing.stderr.includes(`${join(dir, 'nope.yaml')}: cannot read the destinations file: ENOENT`),
    );
    assert.deepEqual(missing.boundPorts, []);
  });
});

describe('admin endpoints', () => {
  let proxy: ProxyProcess;
  let dir: string;
  let destinations: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'weft-admin-'));
    destinations = join(dir, 'destinations.yaml');
    await writeFile(destinations, 'destinations: []\n');
    proxy = await startProxy({
      args: [
        '--destinations',
        destinations,
        '--app-port',
        '9',
        '--log-level',
        'info',
        '--detect-timeout-ms',
        '250',
        '--upstream',
        'flagged:7002=0',
      ],
      env: {
        WEFT_PROXY_LOG_LEVEL: 'warn', // the flag wins
        WEFT_PROXY_DETECT_TIMEOUT_MS: '900', // the flag wins
        WEFT_PROXY_CONNECT_TIMEOUT_MS: '1234', // no flag: the environment applies
        WEFT_PROXY_UPSTREAMS: 'from-env=0', // the flag wins
      },
    });
  });

  after(async () => {
    await proxy?.stop('SIGKILL');
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('shows the effective configuration at /config, flags over environment', async () => {
    const { status, body } = await admin(proxy, 'GET', '/config');
    assert.equal(status, 200);
    const config = JSON.parse(body) as Record<string, unknown>;
    assert.equal(config.logLevel, 'info');
    assert.equal(config.detectTimeoutMs, 250);
    assert.equal(config.connectTimeoutMs, 1234);
    assert.deepEqual(config.upstreams, [{ name: 'flagged:7002', localPort: 0 }]);
    assert.equal(config.appPort, 9);
    assert.equal(config.destinations, destinations);
    assert.equal(config.maxHeaderBytes, 16384, 'defaults are shown too');
    assert.deepEqual(config.opaquePorts, [25, 587, 3306, 4444, 5432, 6379, 9300, 11211]);
    assert.deepEqual(config.adminListenAddr, { host: '127.0.0.1', port: 0 });
    assert.deepEqual(Object.keys(proxy.upstreams), ['flagged:7002']);
  });

  it('answers /live and /ready with 200, and unknown paths with 404', async () => {
    assert.deepEqual(await admin(proxy, 'GET', '/live'), { status: 200, body: 'live\n' });
    assert.deepEqual(await admin(proxy, 'GET', '/ready'), { status: 200, body: 'ready\n' });
    assert.equal((await admin(proxy, 'GET', '/nope')).status, 404);
    assert.equal((await admin(proxy, 'GET', '/metrics/extra')).status, 404);
    assert.equal((await admin(proxy, 'GET', '/shutdown')).status, 405);
    assert.equal((await admin(proxy, 'DELETE', '/log-level')).status, 405);
  });

  it('reads and changes the log level at runtime: debug lines appear after PUT debug', async () => {
    /** A request the outbound parser rejects; the proxy logs it at debug level. */
    const badRequest = async () => {
      const [host, port] = [proxy.outbound!.split(':')[0], Number(proxy.outbound!.split(':')[1])];
      await new Promise<void>((resolve, reject) => {
        const s = net.connect({ host, port }, () => s.write('GET / HTTP/1.1 extra\r\nHost: a\r\n\r\n'));
        s.on('data', () => {});
        s.on('close', () => resolve());
        s.on('error', reject);
      });
    };
    const debugLines = () => proxy.logEntries((e) => e.level === 'debug');

    assert.deepEqual(await admin(proxy, 'GET', '/log-level'), { status: 200, body: 'info\n' });
    await badRequest();
    assert.deepEqual(await admin(proxy, 'PUT', '/log-level', 'debug'), { status: 200, body: 'debug\n' });
    // Log lines are written before a response goes out, so none about the first request can
    // arrive late: it was not logged at info.
    assert.deepEqual(debugLines(), []);
    assert.deepEqual(await admin(proxy, 'GET', '/log-level'), { status: 200, body: 'debug\n' });
    await badRequest();
    const line = await proxy.waitForLog((e) => e.level === 'debug' && e.msg === 'bad request');
    assert.equal(line.direction, 'outbound');
    assert.equal(debugLines().length, 1);

    assert.equal((await admin(proxy, 'PUT', '/log-level', 'chatty')).status, 400);
    assert.deepEqual(await admin(proxy, 'PUT', '/log-level', 'warn\n'), { status: 200, body: 'warn\n' });
    await badRequest();
    assert.deepEqual(await admin(proxy, 'GET', '/log-level'), { status: 200, body: 'warn\n' });
    assert.equal(debugLines().length, 1, 'no debug lines at warn');
    assert.deepEqual(await admin(proxy, 'POST', '/log-level', 'info'), { status: 200, body: 'info\n' });
  });

  it('shuts down on POST /shutdown from loopback: 202, then exit 0', async () => {
    const res = await admin(proxy, 'POST', '/shutdown');
    assert.deepEqual(res, { status: 202, body: 'shutting down\n' });
    let timer: NodeJS.Timeout | undefined;
    const exit = await Promise.race([
      proxy.exited,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error('no exit within 15 s')), 15_000);
      }),
    ]).finally(() => clearTimeout(timer));
    assert.deepEqual(exit, { code: 0, signal: null });
    await proxy.waitForLog((e) => e.msg === 'shut down');
    assert.equal(await canConnect(Number(proxy.admin!.split(':')[1])), false);
  });
});
