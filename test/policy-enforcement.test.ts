/**
 * Authorization policy end to end (issue 4): a real control plane (in this process), real
 * `weft proxy` processes that get their inbound policy over Policy/WatchInbound, real apps, and
 * real clients calling from different loopback addresses (network rules; identity-based rules
 * need the mesh mTLS path and are covered by the evaluator's tests and the explain CLI).
 *
 * In namespace `shop` (default `deny`): an allowed client gets 200 and another 403 naming the
 * server; an opaque TCP client that is not allowed is reset; gRPC gets PERMISSION_DENIED; audit
 * mode allows and counts; a policy change reaches the live proxy within 1 s; and `weft policy
 * explain` agrees with what the proxies do on a 3 clients × 3 servers matrix.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import type { RunningControlPlane } from '../src/control/control-plane.js';
import { newLogger } from '../src/lib/log.js';
import { grpcClient, startHttpApp, startTcpEcho, type TestServer, unaryCall } from './support/apps.js';
import { startTestControlPlane } from './support/control-plane.js';
import { eventually } from './support/eventually.js';
import { execExitCode } from './support/exec-exit-code.js';
import { WEFT_BIN } from './support/paths.js';
import { httpFrom, tcpFrom } from './support/policy-clients.js';
import { sampleSum } from './support/prom-text.js';
import { type ProxyProcess, startProxy } from './support/proxy-process.js';

const NS = 'shop';
const CLIENTS = ['127.0.0.2', '127.0.0.3', '127.0.0.4'] as const;
/** Issue 4: policy changes apply to live proxies within 1 s. */
const PROPAGATION_BOUND_MS = 1000;

let dir: string;
let control: RunningControlPlane;
const apps: TestServer[] = [];
const proxies: Record<string, ProxyProcess> = {};
const appPorts: Record<string, number> = {};

const res = (kind: string, name: string, spec: unknown, namespace = NS) => ({
  apiVersion: 'weft.io/v1alpha1',
  kind,
  metadata: { name, namespace },
  spec,
});
const net32 = (...addrs: string[]) => addrs.map((a) => ({ cidr: `${a}/32` }));

/** Starts the inbound proxy of workload `<service>-0` in front of `appPort` and registers it. */
async function startWorkload(service: string, appPort: number): Promise<void> {
  const p = await startProxy({
    args: ['--app-port', String(appPort), '--outbound-listen-addr', 'none'],
    env: {
      WEFT_PROXY_DESTINATION_ADDR: control.addresses.destination,
      WEFT_PROXY_WORKLOAD_NAMESPACE: NS,
      WEFT_PROXY_WORKLOAD_SERVICE: service,
      WEFT_PROXY_WORKLOAD_NAME: `${service}-0`,
      WEFT_PROXY_DETECT_TIMEOUT_MS: '200',
    },
  });
  proxies[service] = p;
  appPorts[service] = appPort;
  const [host, port] = (p.inbound as string).split(':');
  await control.store.apply(res('Service', service, { ports: [{ port: appPort }] }));
  await control.store.apply(res('Workload', `${service}-0`, { service, address: host, port: Number(port) }));
}

/** `weft policy explain ...` against the test's control plane: the exit code and stdout. */
function explain(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [WEFT_BIN, 'policy', 'explain', '-n', NS, ...args],
      { env: { ...process.env, WEFT_API_ADDR: control.addresses.api }, timeout: 20_000 },
      (err, stdout, stderr) => resolve({ code: execExitCode(err), stdout, stderr }),
    );
  });
}

/** What a proxy did with a call from `from` to the matrix server `service`: allowed or not. */
async function proxyAllows(from: string, service: string): Promise<boolean> {
  const inbound = proxies[service].inbound as string;
  if (service === 'db') {
    const r = await tcpFrom(from, inbound, 'ping');
    if (r.echoed === 'ping') return true;
    assert.ok(r.echoed === '' && (r.error === 'ECONNRESET' || r.error === ''), `db: ${JSON.stringify(r)}`);
    return false;
  }
  const r = await httpFrom(from, inbound, `/${service}`, { h2: service === 'authors' });
  if (r.status === 200) return true;
  assert.equal(r.status, 403, r.head);
  assert.match(
    r.proxyError,
    new RegExp(`^unauthorized: no authorization for this client on server ${service}-`),
  );
  return false;
}

describe('authorization policy through real proxies', () => {
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'weft-policy-'));
    control = await startTestControlPlane({ stateDir: dir, log: newLogger('warn', {}, () => {}) });
    await control.store.apply(res('Namespace', NS, { defaultInboundPolicy: 'deny' }, 'default'));
    const books = await startHttpApp();
    const authors = await startHttpApp();
    const db = await startTcpEcho();
    apps.push(books, authors, db);
    for (const r of [
      res('Server', 'books-http', {
        selector: { service: 'books' },
        port: books.port,
        proxyProtocol: 'HTTP/1',
      }),
      res('Server', 'authors-h2', {
        selector: { service: 'authors' },
        port: authors.port,
        proxyProtocol: 'HTTP/2',
      }),
      res('Server', 'db-tcp', { selector: { service: 'db' }, port: db.port, proxyProtocol: 'opaque' }),
      res('AuthorizationPolicy', 'books-readers', {
        targetRef: { kind: 'Server', name: 'books-http' },
        from: [{ networks: net32('127.0.0.2', '127.0.0.3') }],
      }),
      res('AuthorizationPolicy', 'authors-get', {
        targetRef: { kind: 'Server', name: 'authors-h2' },
        from: [{ networks: [{ cidr: '127.0.0.0/24', except: ['127.0.0.2/32'] }] }],
        http: [{ path: { prefix: '/authors' }, methods: ['GET'] }],
      }),
      res('AuthorizationPolicy', 'db-clients', {
        targetRef: { kind: 'Server', name: 'db-tcp' },
        from: [{ networks: net32('127.0.0.4') }],
      }),
    ])
      await control.store.apply(r);
    await startWorkload('books', books.port);
    await startWorkload('authors', authors.port);
    await startWorkload('db', db.port);
  });

  after(async () => {
    await Promise.all(Object.values(proxies).map((p) => p.stop()));
    await Promise.all(apps.map((a) => a.close()));
    await control?.shutdown();
    await rm(dir, { recursive: true, force: true });
  });

  it('allows an authorized client (200) and answers another with 403 naming the server, counted', async () => {
    const ok = await httpFrom('127.0.0.2', proxies.books.inbound as string, '/books');
    assert.equal(ok.status, 200);
    const denied = await httpFrom('127.0.0.4', proxies.books.inbound as string, '/books');
    assert.equal(denied.status, 403);
    assert.equal(denied.proxyError, 'unauthorized: no authorization for this client on server books-http');
    assert.match(denied.head, /proxy-status: weft; error=http_request_denied; details=".*127\.0\.0\.4/i);
    const m = await proxies.books.metrics();
    const srv = { srv_name: 'books-http', srv_port: String(appPorts.books) };
    assert.ok(sampleSum(m, 'inbound_http_authz_allow_total', { ...srv, authz_name: 'books-readers' }) >= 1);
    assert.ok(sampleSum(m, 'inbound_http_authz_deny_total', srv) >= 1);
  });

  it('refuses a WebSocket upgrade from a client that is not allowed, before the app sees it', async () => {
    const ws = {
      connection: 'Upgrade',
      upgrade: 'websocket',
      'sec-websocket-version': '13',
      'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
    };
    const denied = await httpFrom('127.0.0.4', proxies.books.inbound as string, '/books', { headers: ws });
    assert.equal(denied.status, 403);
    assert.equal(denied.proxyError, 'unauthorized: no authorization for this client on server books-http');
  });

  it('resets an opaque TCP connection from a client that is not allowed', async () => {
    const denied = await tcpFrom('127.0.0.2', proxies.db.inbound as string, 'ping');
    assert.equal(denied.echoed, '');
    assert.equal(denied.error, 'ECONNRESET');
    assert.deepEqual(await tcpFrom('127.0.0.4', proxies.db.inbound as string, 'ping'), {
      echoed: 'ping',
      error: '',
    });
    const m = await proxies.db.metrics();
    assert.ok(sampleSum(m, 'inbound_tcp_authz_deny_total', { srv_name: 'db-tcp' }) >= 1);
    assert.ok(
      sampleSum(m, 'inbound_tcp_authz_allow_total', { srv_name: 'db-tcp', authz_name: 'db-clients' }) >= 1,
    );
  });

  it('answers a denied gRPC call with PERMISSION_DENIED (trailers-only) naming the server', async () => {
    const client = grpcClient(proxies.books.inbound as string);
    try {
      const out = await unaryCall(client, { message: 'hi' }, { deadlineMs: 10_000 });
      assert.equal(out.status.code, grpc.status.PERMISSION_DENIED);
      assert.match(out.status.details, /request denied: Server books-http has no authorization/);
      assert.deepEqual(out.status.metadata.get('weft-proxy-error'), [
        'unauthorized: no authorization for this client on server books-http',
      ]);
    } finally {
      client.close();
    }
  });

  it('agrees with `weft policy explain` on every client × server pair', async () => {
    const want: Record<string, boolean[]> = {
      '127.0.0.2': [true, false, false],
      '127.0.0.3': [true, true, false],
      '127.0.0.4': [false, true, true],
    };
    const servers = ['books', 'authors', 'db'];
    for (const from of CLIENTS) {
      for (const [i, service] of servers.entries()) {
        const did = await proxyAllows(from, service);
        const said = await explain([
          '--from',
          from,
          '--to',
          `${service}-0:${appPorts[service]}`,
          '--path',
          `/${service}`,
        ]);
        assert.ok(
          said.code === 0 || said.code === 3,
          `explain exited ${said.code}: ${said.stdout}${said.stderr}`,
        );
        assert.equal(
          said.code === 0,
          did,
          `${from} → ${service}: proxy ${did ? 'allowed' : 'denied'}, explain said\n${said.stdout}`,
        );
        assert.equal(did, want[from][i], `${from} → ${service}`);
      }
    }
  });

  it('audit mode allows what it would deny, and logs and counts it', async () => {
    await control.store.apply(
      res('Server', 'books-http', {
        selector: { service: 'books' },
        port: appPorts.books,
        proxyProtocol: 'HTTP/1',
        accessPolicy: 'audit',
      }),
    );
    const srv = { srv_name: 'books-http', srv_port: String(appPorts.books) };
    await eventually(async () =>
      assert.equal((await httpFrom('127.0.0.4', proxies.books.inbound as string, '/books')).status, 200),
    );
    assert.ok(sampleSum(await proxies.books.metrics(), 'inbound_http_authz_audit_total', srv) >= 1);
    await proxies.books.waitForLog(
      (e) => e.msg === 'authorization audit: would deny' && e.server === 'books-http',
    );
    const said = await explain(['--from', '127.0.0.4', '--to', `books-0:${appPorts.books}`]);
    assert.equal(said.code, 0);
    assert.match(said.stdout, /^ALLOWED \(audit: would be denied\)/);
    await control.store.apply(
      res('Server', 'books-http', {
        selector: { service: 'books' },
        port: appPorts.books,
        proxyProtocol: 'HTTP/1',
      }),
    );
    await eventually(async () =>
      assert.equal((await httpFrom('127.0.0.4', proxies.books.inbound as string, '/books')).status, 403),
    );
  });

  it('applies a new AuthorizationPolicy to the live proxy within 1 s', async () => {
    const inbound = proxies.books.inbound as string;
    assert.equal((await httpFrom('127.0.0.4', inbound, '/books')).status, 403);
    await control.store.apply(
      res('AuthorizationPolicy', 'books-late', {
        targetRef: { kind: 'Server', name: 'books-http' },
        from: [{ networks: net32('127.0.0.4') }],
      }),
    );
    const applied = performance.now();
    await eventually(async () => assert.equal((await httpFrom('127.0.0.4', inbound, '/books')).status, 200), {
      intervalMs: 10,
    });
    const tookMs = performance.now() - applied;
    assert.ok(tookMs < PROPAGATION_BOUND_MS, `the change took ${tookMs.toFixed(0)} ms to apply`);
  });
});
