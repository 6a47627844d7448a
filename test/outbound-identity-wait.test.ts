/**
 * A proxy binds its listeners while its first certificate is still being fetched
 * (docs/identity.md). A request to a meshed endpoint that arrives in that window waits for the
 * certificate (bounded by `--failfast-timeout-ms`), then goes over mTLS; if the certificate never
 * comes, it fails 503 `identity not ready`, and the proxy stays up. The identity service is
 * reached through a gate this test opens, so the window is as long as the test wants.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import type { RunningControlPlane } from '../src/control/control-plane.js';
import { parseHostPort } from '../src/lib/addr.js';
import { newLogger } from '../src/lib/log.js';
import { prepareWorkloadIdentity } from '../src/platform/local/workload-identity.js';
import { type HttpApp, startHttpApp } from './support/apps.js';
import { startTestControlPlane } from './support/control-plane.js';
import { spiffe, startMeshedProxy } from './support/meshed-proxy.js';
import { type ProxyProcess, startProxy } from './support/proxy-process.js';

const AUTHORITY = 'books:7002';

/** A TCP relay to `target` that holds every connection, unforwarded, until `open()`. */
async function startGate(target: string) {
  const held: net.Socket[] = [];
  const all = new Set<net.Socket>();
  let opened = false;
  const forward = (client: net.Socket) => {
    const { host, port } = parseHostPort(target);
    const upstream = net.connect({ host, port });
    all.add(upstream);
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
    client.pipe(upstream).pipe(client);
  };
  const server = net.createServer((client) => {
    all.add(client);
    client.on('error', () => {});
    if (opened) forward(client);
    else {
      client.pause();
      held.push(client);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    addr: `127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    open() {
      opened = true;
      for (const c of held.splice(0)) forward(c);
    },
    close() {
      for (const s of all) s.destroy();
      server.close();
    },
  };
}

describe('a request that arrives before the first certificate', { timeout: 120_000 }, () => {
  let dir: string;
  let control: RunningControlPlane;
  let app: HttpApp;
  let inbound: ProxyProcess;
  let destinations: string;
  const cleanups: (() => unknown)[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'weft-identity-wait-'));
    control = await startTestControlPlane({ stateDir: dir, log: newLogger('error', {}, () => {}) });
    app = await startHttpApp();
    inbound = await startMeshedProxy(control, 'books', ['--app-port', String(app.port)]);
    destinations = join(dir, 'destinations.yaml');
    await writeFile(
      destinations,
      stringify({
        destinations: [
          {
            authority: AUTHORITY,
            endpoints: [{ address: inbound.inbound, meshed: true, identity: spiffe('books') }],
          },
        ],
      }),
    );
  });
  after(async () => {
    for (const c of cleanups.reverse()) await c();
    await inbound?.stop();
    await app?.close();
    await control?.shutdown();
    await rm(dir, { recursive: true, force: true });
  });

  /** An outbound proxy as `web` whose identity service is behind a closed gate. */
  async function gatedOutbound(failfastMs: number) {
    const gate = await startGate(control.addresses.identity);
    cleanups.push(() => gate.close());
    const files = await prepareWorkloadIdentity(
      parseHostPort(control.addresses.api),
      'default',
      'web',
      parseHostPort(gate.addr),
    );
    cleanups.push(() => files.remove());
    const proxy = await startProxy({
      args: [
        '--destinations',
        destinations,
        '--inbound-listen-addr',
        'none',
        '--failfast-timeout-ms',
        String(failfastMs),
      ],
      env: {
        WEFT_PROXY_IDENTITY: files.identity,
        WEFT_PROXY_IDENTITY_ADDR: gate.addr,
        WEFT_PROXY_IDENTITY_TOKEN_FILE: files.tokenFile,
        WEFT_PROXY_IDENTITY_TRUST_ANCHORS_FILE: files.trustAnchorsFile,
      },
    });
    cleanups.push(() => proxy.stop());
    return { gate, proxy };
  }

  it('waits for the certificate, then is carried over mTLS', async () => {
    const { gate, proxy } = await gatedOutbound(20_000);
    assert.equal((await proxy.adminGet('/ready')).status, 503, 'no certificate yet');
    let settled = false;
    const reply = get(proxy.outbound!).finally(() => (settled = true));
    // Long enough for any connect attempt to have failed the request, were it made.
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(settled, false, 'the request did not wait for the certificate');
    gate.open();
    const { status, body } = await reply;
    assert.equal(status, 200, body);
    const metrics = await proxy.metrics();
    assert.match(metrics, /request_total\{direction="outbound",authority="books:7002",[^}]*tls="true"/);
    assert.equal(proxy.child.exitCode, null, 'the proxy is still running');
  });

  it('fails 503 "identity not ready" when the certificate does not come in time, and stays up', async () => {
    const { proxy } = await gatedOutbound(300);
    const started = performance.now();
    const { status, headers } = await get(proxy.outbound!);
    const elapsedMs = performance.now() - started;
    assert.equal(status, 503);
    assert.equal(headers['weft-proxy-error'], 'identity not ready');
    assert.ok(elapsedMs >= 250, `failed after ${elapsedMs.toFixed(0)} ms, before the failfast timeout`);
    assert.equal((await get(proxy.outbound!)).status, 503, 'still up and answering');
    assert.equal(proxy.child.exitCode, null);
  });
});

function get(addr: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  const { host, port } = parseHostPort(addr);
  return new Promise((resolve, reject) => {
    const req = http.get(
      { host, port, path: '/', headers: { host: AUTHORITY }, agent: false, timeout: 30_000 },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
  });
}
