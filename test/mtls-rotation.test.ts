/**
 * Certificates and trust anchors change under continuous mTLS traffic between real proxies, and
 * no request fails (issue 4, docs/identity.md): with a 20 s leaf lifetime every proxy renews at
 * least twice in 60 s; then a new anchor is added, the issuer re-issued under it and the old
 * anchor removed. New connections get the newest certificate; open ones are not dropped; no
 * process restarts.
 */
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import type { RunningControlPlane } from '../src/control/control-plane.js';
import { parseHostPort } from '../src/lib/addr.js';
import { newLogger } from '../src/lib/log.js';
import { type HttpApp, startHttpApp, startTcpEcho, type TestServer } from './support/apps.js';
import { startTestControlPlane } from './support/control-plane.js';
import { eventually } from './support/eventually.js';
import {
  firstPemCertificate,
  identityOf,
  openssl,
  spiffe,
  startMeshedProxy,
} from './support/meshed-proxy.js';
import { sampleSum } from './support/prom-text.js';
import type { ProxyProcess } from './support/proxy-process.js';

const TRAFFIC_MS = 60_000;

let dir: string;
let control: RunningControlPlane;
let httpApp: HttpApp;
let tcpApp: TestServer;
let inBooks: ProxyProcess;
let inTcp: ProxyProcess;
let out: ProxyProcess;
const proxies: ProxyProcess[] = [];
const meshed = async (account: string, args: string[]) => {
  const proxy = await startMeshedProxy(control, account, args);
  proxies.push(proxy);
  return proxy;
};

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'weft-mtls-rotation-'));
  control = await startTestControlPlane({
    stateDir: dir,
    log: newLogger('error', {}, () => {}),
    env: { WEFT_CONTROL_IDENTITY_LEAF_TTL: '20s' },
  });
  [httpApp, tcpApp] = await Promise.all([startHttpApp(), startTcpEcho()]);
  [inBooks, inTcp] = await Promise.all([
    meshed('books', ['--app-port', String(httpApp.port)]),
    meshed('tcp', ['--app-port', String(tcpApp.port)]),
  ]);
  const destinations = join(dir, 'destinations.yaml');
  await writeFile(
    destinations,
    stringify({
      destinations: [
        {
          authority: 'books:7002',
          endpoints: [{ address: inBooks.inbound, meshed: true, identity: spiffe('books') }],
        },
        {
          authority: 'tcp.weft.test:9000',
          opaque: true,
          endpoints: [{ address: inTcp.inbound, meshed: true, identity: spiffe('tcp') }],
        },
      ],
    }),
  );
  out = await meshed('web', [
    '--destinations',
    destinations,
    '--inbound-listen-addr',
    'none',
    '--upstream',
    'tcp.weft.test:9000=0',
  ]);
});

after(async () => {
  await Promise.all(proxies.map((p) => p.stop()));
  await Promise.all([httpApp?.close(), tcpApp?.close()]);
  await control?.shutdown();
  await rm(dir, { recursive: true, force: true });
});

async function api(method: string, path: string): Promise<unknown> {
  const res = await fetch(`http://${control.addresses.api}${path}`, { method });
  assert.ok(res.ok, `${method} ${path}: ${res.status} ${await res.clone().text()}`);
  return res.json();
}

interface Traffic {
  /** Stops the loops and resolves with what they saw. */
  stop(): Promise<{ ok: number; failures: string[] }>;
}

/**
 * Continuous traffic through the outbound proxy until stopped: HTTP/1 on keep-alive connections
 * (their mTLS connections stay open across swaps), HTTP/1 on a new client connection each time,
 * and opaque TCP on a new mTLS connection each time. Each loop paces itself (a 2-core machine).
 */
function startTraffic(): Traffic {
  const { host, port } = parseHostPort(out.outbound!);
  const tcpPort = parseHostPort(out.upstreams['tcp.weft.test:9000']!).port;
  const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 2 });
  let running = true;
  let ok = 0;
  const failures: string[] = [];
  const record = async (what: string, attempt: () => Promise<void>) => {
    try {
      await attempt();
      ok++;
    } catch (err) {
      failures.push(`${what}: ${(err as Error).message}`);
    }
  };
  const get = (agent: http.Agent | false, path: string) =>
    new Promise<void>((resolve, reject) => {
      const req = http.get(
        { host, port, path, agent, headers: { host: 'books:7002' }, timeout: 10_000 },
        (res) => {
          res.resume();
          res.on('end', () =>
            res.statusCode === 200 ? resolve() : reject(new Error(`status ${res.statusCode}`)),
          );
        },
      );
      req.on('timeout', () => req.destroy(new Error('timed out')));
      req.on('error', reject);
    });
  const echo = () =>
    new Promise<void>((resolve, reject) => {
      const payload = Buffer.alloc(4096, 'x');
      const socket = net.connect({ host: '127.0.0.1', port: tcpPort });
      const chunks: Buffer[] = [];
      socket.setTimeout(10_000, () => socket.destroy(new Error('timed out')));
      socket.on('data', (c: Buffer) => chunks.push(c));
      socket.on('error', reject);
      socket.on('close', () =>
        Buffer.concat(chunks).equals(payload)
          ? resolve()
          : reject(new Error(`echoed ${Buffer.concat(chunks).length} bytes`)),
      );
      socket.end(payload);
    });
  const loop = async (what: string, attempt: () => Promise<void>) => {
    while (running) {
      await record(what, attempt);
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  const loops = [
    loop('keep-alive', () => get(keepAlive, '/ka')),
    loop('keep-alive', () => get(keepAlive, '/ka')),
    loop('new connection', () => get(false, '/new')),
    loop('opaque', echo),
  ];
  return {
    async stop() {
      running = false;
      await Promise.all(loops);
      keepAlive.destroy();
      return { ok, failures };
    },
  };
}

/** The SHA-256 (hex) of the certificate the inbound proxy of `proxy` presents to a new mTLS client. */
async function presentedFingerprint(proxy: ProxyProcess): Promise<string> {
  const { stdout } = await openssl(['s_client', '-connect', proxy.inbound!, '-alpn', 'weft.mesh/1']);
  const pem = firstPemCertificate(stdout);
  assert.ok(pem, stdout);
  return createHash('sha256').update(new X509Certificate(pem).raw).digest('hex');
}

const refreshes = async (proxy: ProxyProcess) =>
  sampleSum(await proxy.metrics(), 'identity_cert_refresh_total', { result: 'ok' });

describe('mTLS under certificate and trust-anchor rotation', { timeout: 240_000 }, () => {
  it(`loses no request across leaf renewals (20 s leaves, ${TRAFFIC_MS / 1000} s of traffic)`, async (t) => {
    const firstIn = (await identityOf(inBooks)).fingerprint;
    const firstOut = (await identityOf(out)).fingerprint;
    const traffic = startTraffic();
    await new Promise((r) => setTimeout(r, TRAFFIC_MS));
    const { ok, failures } = await traffic.stop();
    t.diagnostic(`${ok} exchanges, ${failures.length} failed`);
    assert.deepEqual(failures, []);
    assert.ok(ok > 500, `only ${ok} exchanges`);
    for (const p of [inBooks, inTcp, out]) {
      const n = await refreshes(p);
      assert.ok(n >= 3, `${n} certificates (bootstrap and renewals) on ${p.inbound ?? p.outbound}`);
    }
    const nowIn = (await identityOf(inBooks)).fingerprint;
    assert.notEqual(nowIn, firstIn);
    assert.notEqual((await identityOf(out)).fingerprint, firstOut);
    // A new connection gets the certificate held now (unless a renewal lands in between).
    await eventually(async () =>
      assert.equal(await presentedFingerprint(inBooks), (await identityOf(inBooks)).fingerprint),
    );
  });

  it('loses no request while an anchor is added, the issuer re-issued under it and the old anchor removed', async (t) => {
    const pids = proxies.map((p) => p.pid);
    const all = [inBooks, inTcp, out];
    const old = (await identityOf(out)).anchors.map((a) => a.fingerprint);
    assert.equal(old.length, 1);
    const traffic = startTraffic();
    try {
      await new Promise((r) => setTimeout(r, 2000));
      await api('POST', '/api/v1/identity/anchors');
      await eventually(async () => {
        for (const p of all) assert.equal((await identityOf(p)).anchors.length, 2);
      });
      await new Promise((r) => setTimeout(r, 2000));
      const issuer = (await api('POST', '/api/v1/identity/issuer')) as { fingerprint: string };
      await eventually(
        async () => {
          for (const p of all) assert.equal((await identityOf(p)).issuerFingerprint, issuer.fingerprint);
        },
        { timeoutMs: 20_000, intervalMs: 200 },
      );
      await new Promise((r) => setTimeout(r, 2000));
      await api('DELETE', `/api/v1/identity/anchors/${old[0]}`);
      await eventually(async () => {
        for (const p of all) {
          const anchors = (await identityOf(p)).anchors.map((a) => a.fingerprint);
          assert.equal(anchors.length, 1);
          assert.equal(anchors.includes(old[0]!), false);
        }
      });
      await new Promise((r) => setTimeout(r, 3000));
    } finally {
      const { ok, failures } = await traffic.stop();
      t.diagnostic(`${ok} exchanges, ${failures.length} failed`);
      assert.deepEqual(failures, []);
      assert.ok(ok > 100, `only ${ok} exchanges`);
    }
    assert.deepEqual(
      proxies.map((p) => p.pid),
      pids,
    );
    for (const p of proxies) assert.equal(p.child.exitCode, null, 'no proxy exited');
  });
});
