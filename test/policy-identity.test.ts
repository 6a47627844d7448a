/**
 * Identity-based authorization end to end (issue 4): a real control plane issues certificates
 * and streams inbound policy; real `weft proxy` processes talk mTLS, so each inbound proxy knows
 * the verified SPIFFE ID of its client. Three client proxies (web and admin with identities, one
 * without) call three servers (HTTP/1, HTTP/2, opaque TCP) in namespace `shop`, whose default is
 * `deny`: allowed identities get 200, others 403 or a reset, and `weft policy explain` agrees
 * with the proxies on every pair.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { RunningControlPlane } from '../src/control/control-plane.js';
import { parseHostPort } from '../src/lib/addr.js';
import { newLogger } from '../src/lib/log.js';
import { prepareWorkloadIdentity } from '../src/platform/local/workload-identity.js';
import { startHttpApp, startTcpEcho, type TestServer } from './support/apps.js';
import { startTestControlPlane } from './support/control-plane.js';
import { curl, curlWriteOut, parseCurlWrite } from './support/curl.js';
import { eventually } from './support/eventually.js';
import { execExitCode } from './support/exec-exit-code.js';
import { WEFT_BIN } from './support/paths.js';
import { tcpFrom } from './support/policy-clients.js';
import { sampleSum } from './support/prom-text.js';
import { type ProxyProcess, startProxy } from './support/proxy-process.js';

const NS = 'shop';
const WEB = 'spiffe://weft.local/ns/shop/sa/web';
const ADMIN = 'spiffe://weft.local/ns/ops/sa/admin';
const SERVICES = ['books', 'authors', 'db'] as const;
type Service = (typeof SERVICES)[number];

let dir: string;
let control: RunningControlPlane;
const apps: TestServer[] = [];
const started: ProxyProcess[] = [];
const appPorts = {} as Record<Service, number>;
const inbound = {} as Record<Service, ProxyProcess>;
/** Client name → its outbound proxy. */
const clients: Record<string, ProxyProcess> = {};

const res = (kind: string, name: string, spec: unknown, namespace = NS) => ({
  apiVersion: 'weft.io/v1alpha1',
  kind,
  metadata: { name, namespace },
  spec,
});

/** A proxy with an identity from the control plane (when `account` is set); resolves once /ready. */
async function startMeshed(args: string[], env: Record<string, string>, account?: [string, string]) {
  const files = account
    ? await prepareWorkloadIdentity(parseHostPort(control.addresses.api), account[0], account[1])
    : undefined;
  try {
    const proxy = await startProxy({
      args,
      env: {
        WEFT_PROXY_DESTINATION_ADDR: control.addresses.destination,
        ...(files && {
          WEFT_PROXY_IDENTITY: files.identity,
          WEFT_PROXY_IDENTITY_ADDR: files.identityAddr,
          WEFT_PROXY_IDENTITY_TOKEN_FILE: files.tokenFile,
          WEFT_PROXY_IDENTITY_TRUST_ANCHORS_FILE: files.trustAnchorsFile,
        }),
        ...env,
      },
    });
    started.push(proxy);
    await eventually(async () => assert.equal((await proxy.adminGet('/ready')).status, 200), {
      timeoutMs: 15_000,
    });
    return proxy;
  } finally {
    await files?.remove();
  }
}

async function startServer(service: Service, app: TestServer): Promise<void> {
  apps.push(app);
  appPorts[service] = app.port;
  const p = await startMeshed(
    ['--app-port', String(app.port), '--outbound-listen-addr', 'none'],
    {
      WEFT_PROXY_WORKLOAD_NAMESPACE: NS,
      WEFT_PROXY_WORKLOAD_SERVICE: service,
      WEFT_PROXY_WORKLOAD_NAME: `${service}-0`,
      WEFT_PROXY_DETECT_TIMEOUT_MS: '200',
    },
    [NS, service],
  );
  inbound[service] = p;
  const { host, port } = parseHostPort(p.inbound as string);
  await control.store.apply(
    res('Service', service, {
      ports: [{ port: app.port, ...(service === 'db' ? { protocol: 'opaque' } : {}) }],
    }),
  );
  await control.store.apply(
    res('Workload', `${service}-0`, {
      service,
      address: host,
      port,
      identity: `spiffe://weft.local/ns/${NS}/sa/${service}`,
    }),
  );
}

/** What the proxies did with `client` calling `service`: allowed or not. */
async function proxyAllows(client: string, service: Service): Promise<boolean> {
  const out = clients[client];
  if (service === 'db') {
    const r = await tcpFrom('127.0.0.1', out.upstreams[`db.${NS}:${appPorts.db}`] as string, 'ping');
    if (r.echoed === 'ping') return true;
    assert.equal(r.echoed, '', `db: ${JSON.stringify(r)}`);
    return false;
  }
  const r = await curl([
    '--max-time',
    '10',
    '-x',
    `http://${out.outbound}`,
    '-D',
    '-',
    '-o',
    '/dev/null',
    ...curlWriteOut(['http_code']),
    `http://${service}.${NS}:${appPorts[service]}/${service}`,
  ]);
  assert.equal(r.code, 0, r.stderr);
  const { body: head, values } = parseCurlWrite(r.stdout, ['http_code']);
  if (values.http_code === '200') return true;
  assert.equal(values.http_code, '403', head);
  assert.match(
    head,
    new RegExp(`weft-proxy-error: unauthorized: no authorization for this client on server ${service}-`),
  );
  return false;
}

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

describe('identity-based authorization over mesh mTLS', () => {
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'weft-policy-identity-'));
    control = await startTestControlPlane({ stateDir: dir, log: newLogger('error', {}, () => {}) });
    for (const r of [
      res('Namespace', NS, { defaultInboundPolicy: 'deny' }, 'default'),
      res('AuthorizationPolicy', 'books-web', {
        targetRef: { kind: 'Server', name: 'books-http' },
        from: [{ identities: [WEB] }],
      }),
      res('AuthorizationPolicy', 'authors-meshed', {
        targetRef: { kind: 'Server', name: 'authors-h2' },
        from: [{ identities: ['*'] }],
      }),
      res('AuthorizationPolicy', 'db-ops', {
        targetRef: { kind: 'Server', name: 'db-tcp' },
        from: [{ identitySuffixes: ['ns/ops/sa/*'] }],
      }),
    ])
      await control.store.apply(r);
    await startServer('books', await startHttpApp());
    await startServer('authors', await startHttpApp());
    await startServer('db', await startTcpEcho());
    for (const [name, service, port] of [
      ['books-http', 'books', appPorts.books],
      ['authors-h2', 'authors', appPorts.authors],
      ['db-tcp', 'db', appPorts.db],
    ] as const)
      await control.store.apply(
        res('Server', name, {
          selector: { service },
          port,
          proxyProtocol: service === 'db' ? 'opaque' : service === 'books' ? 'HTTP/1' : 'HTTP/2',
        }),
      );
    const clientArgs = ['--inbound-listen-addr', 'none', '--upstream', `db.${NS}:${appPorts.db}=0`];
    clients.web = await startMeshed(clientArgs, {}, [NS, 'web']);
    clients.admin = await startMeshed(clientArgs, {}, ['ops', 'admin']);
    clients.anonymous = await startMeshed(clientArgs, {});
  });

  after(async () => {
    await Promise.all(started.map((p) => p.stop()));
    await Promise.all(apps.map((a) => a.close()));
    await control?.shutdown();
    await rm(dir, { recursive: true, force: true });
  });

  it('lets an allowed identity through (200) and answers another with 403, counted', async () => {
    await eventually(async () => assert.equal(await proxyAllows('web', 'books'), true));
    assert.equal(await proxyAllows('admin', 'books'), false);
    const m = await inbound.books.metrics();
    const srv = { srv_name: 'books-http', srv_port: String(appPorts.books) };
    assert.ok(sampleSum(m, 'inbound_http_authz_allow_total', { ...srv, authz_name: 'books-web' }) >= 1);
    assert.ok(sampleSum(m, 'inbound_http_authz_deny_total', srv) >= 1);
  });

  it('resets an opaque TCP connection from an identity that is not allowed', async () => {
    assert.equal(await proxyAllows('admin', 'db'), true);
    assert.equal(await proxyAllows('web', 'db'), false);
    assert.ok(
      sampleSum(await inbound.db.metrics(), 'inbound_tcp_authz_deny_total', { srv_name: 'db-tcp' }) >= 1,
    );
  });

  it('agrees with `weft policy explain` on every client × server pair', async () => {
    const want: Record<string, [boolean, boolean, boolean]> = {
      web: [true, true, false],
      admin: [false, true, true],
      anonymous: [false, false, false],
    };
    const from: Record<string, string> = { web: WEB, admin: ADMIN, anonymous: 'unauthenticated' };
    for (const client of Object.keys(want)) {
      for (const [i, service] of SERVICES.entries()) {
        const did = await proxyAllows(client, service);
        const said = await explain([
          '--from',
          from[client],
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
          `${client} → ${service}: proxy ${did ? 'allowed' : 'denied'}, explain:\n${said.stdout}`,
        );
        assert.equal(did, want[client][i], `${client} → ${service}`);
      }
    }
  });
});
