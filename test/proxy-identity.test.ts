/**
 * A real `weft proxy` obtaining and renewing its certificate from a real control plane
 * (docs/identity.md): bootstrap with a token minted over the API, /ready gated on the
 * certificate, /identity and the identity metrics, renewal at 70% of a 20 s leaf, renewal soon
 * after the issuer is re-issued, and a spent token or a foreign trust anchor never making it ready.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { RunningControlPlane } from '../src/control/control-plane.js';
import { newLogger } from '../src/lib/log.js';
import { startTestControlPlane } from './support/control-plane.js';
import { eventually } from './support/eventually.js';
import { sampleSum } from './support/prom-text.js';
import { type ProxyProcess, startProxy } from './support/proxy-process.js';
import { newTestCa } from './support/test-ca.js';

const BOOKS = 'spiffe://weft.local/ns/default/sa/books';
const AUTHORS = 'spiffe://weft.local/ns/default/sa/authors';
const log = newLogger('error', { component: 'control' }, () => {});

interface IdentityJson {
  identity: string;
  ready: boolean;
  notAfter: string | null;
  fingerprint: string | null;
  issuerFingerprint: string | null;
  anchors: { fingerprint: string }[];
}

let dir: string;
let control: RunningControlPlane;
const proxies: ProxyProcess[] = [];

async function api(method: string, path: string, body?: unknown): Promise<Response> {
  const res = await fetch(`http://${control.addresses.api}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  assert.ok(res.ok, `${method} ${path}: ${res.status} ${await res.clone().text()}`);
  return res;
}

async function mintToken(identity: string): Promise<string> {
  const { token } = (await (await api('POST', '/api/v1/identity/tokens', { identity })).json()) as {
    token: string;
  };
  return token;
}

/** Writes the token and anchors files and starts a proxy with the identity settings. */
async function startIdentityProxy(name: string, identity: string, token: string, anchorsPem?: string) {
  const tokenFile = join(dir, `${name}.token`);
  const anchorsFile = join(dir, `${name}.anchors.pem`);
  await writeFile(tokenFile, `${token}\n`, { mode: 0o600 });
  await writeFile(
    anchorsFile,
    anchorsPem ?? (await (await api('GET', '/api/v1/identity/trust-bundle')).text()),
  );
  const proxy = await startProxy({
    env: {
      WEFT_PROXY_INBOUND_LISTEN_ADDR: 'none',
      WEFT_PROXY_LOG_LEVEL: 'debug',
      WEFT_PROXY_IDENTITY: identity,
      WEFT_PROXY_IDENTITY_ADDR: control.addresses.identity,
      WEFT_PROXY_IDENTITY_TOKEN_FILE: tokenFile,
      WEFT_PROXY_IDENTITY_TRUST_ANCHORS_FILE: anchorsFile,
    },
  });
  proxies.push(proxy);
  return proxy;
}

async function identityOf(proxy: ProxyProcess): Promise<IdentityJson> {
  const { status, body } = await proxy.adminGet('/identity');
  assert.equal(status, 200, body);
  return JSON.parse(body) as IdentityJson;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'weft-proxy-identity-'));
  control = await startTestControlPlane({
    stateDir: dir,
    log,
    env: { WEFT_CONTROL_IDENTITY_LEAF_TTL: '20s' },
  });
});

after(async () => {
  await Promise.all(proxies.map((p) => p.stop()));
  await control?.shutdown();
  await rm(dir, { recursive: true, force: true });
});

describe('proxy identity from the control plane', () => {
  it('becomes ready with a certificate, shows it, and renews a 20 s leaf before it expires', async () => {
    const token = await mintToken(BOOKS);
    const proxy = await startIdentityProxy('books', BOOKS, token);
    await eventually(async () => assert.equal((await proxy.adminGet('/ready')).status, 200), {
      timeoutMs: 15_000,
    });

    const first = await identityOf(proxy);
    assert.equal(first.identity, BOOKS);
    assert.equal(first.ready, true);
    assert.ok(first.notAfter);
    const leftMs = Date.parse(first.notAfter) - Date.now();
    assert.ok(leftMs > 0 && leftMs <= 21_000, `a 20 s leaf (${leftMs} ms left)`);
    const status = (await (await api('GET', '/api/v1/identity')).json()) as {
      issuer: { fingerprint: string };
      anchors: { fingerprint: string }[];
    };
    assert.equal(first.issuerFingerprint, status.issuer.fingerprint);
    assert.deepEqual(
      first.anchors.map((a) => a.fingerprint),
      status.anchors.map((a) => a.fingerprint),
    );

    const metrics = await proxy.metrics();
    assert.equal(
      sampleSum(metrics, 'identity_cert_expiration_timestamp_seconds', {}),
      Math.floor(Date.parse(first.notAfter) / 1000),
    );
    assert.equal(sampleSum(metrics, 'identity_cert_refresh_total', { result: 'ok' }), 1);

    // Renewal at ~70% of 20 s: within 20 s the proxy holds a newer leaf, counted, with the gauge moved.
    const renewed = await eventually(
      async () => {
        const now = await identityOf(proxy);
        assert.ok(
          now.notAfter && Date.parse(now.notAfter) > Date.parse(first.notAfter as string),
          'notAfter moved',
        );
        return now;
      },
      { timeoutMs: 20_000, intervalMs: 250 },
    );
    assert.notEqual(renewed.fingerprint, first.fingerprint);
    const after = await proxy.metrics();
    assert.ok(sampleSum(after, 'identity_cert_refresh_total', { result: 'ok' }) >= 2);
    assert.ok(
      sampleSum(after, 'identity_cert_expiration_timestamp_seconds', {}) >=
        Math.floor(Date.parse(renewed.notAfter as string) / 1000),
    );
    assert.equal((await proxy.adminGet('/ready')).status, 200);
    // The renewal authenticated with the leaf: the token, spent, is never sent (nor logged).
    assert.ok(!proxy.logs.some((l) => l.includes(token)), 'the token never appears in the logs');
    assert.ok(!proxy.logs.some((l) => l.includes('PRIVATE KEY')), 'no key material in the logs');
    // grpc-js is given a DNS-style server name, not the IP target (Node warns about IP SNI).
    assert.ok(!proxy.logs.some((l) => l.includes('DEP0123')), 'no TLS ServerName warning');
  });

  it('renews within seconds when the issuer is re-issued, and follows the new anchors', async () => {
    const proxy = await startIdentityProxy('authors', AUTHORS, await mintToken(AUTHORS));
    const first = await eventually(
      async () => {
        const id = await identityOf(proxy);
        assert.ok(id.ready);
        return id;
      },
      { timeoutMs: 15_000 },
    );
    await api('POST', '/api/v1/identity/anchors');
    await eventually(async () =>
      assert.equal((await identityOf(proxy)).anchors.length, first.anchors.length + 1),
    );
    const issuer = (await (await api('POST', '/api/v1/identity/issuer')).json()) as { fingerprint: string };
    // The regular renewal of a 20 s leaf could also come within this window; the issuer check
    // is what shows the move to the new issuer.
    await eventually(
      async () => assert.equal((await identityOf(proxy)).issuerFingerprint, issuer.fingerprint),
      {
        timeoutMs: 10_000,
        intervalMs: 100,
      },
    );
    assert.ok(
      proxy.logEntries((e) => e.msg === 'issuer changed; renewing soon').length > 0,
      'renewed for the issuer',
    );

    // The old anchor goes: the proxy drops it live and stays ready on its new chain.
    const old = first.anchors[0]?.fingerprint as string;
    await api('DELETE', `/api/v1/identity/anchors/${old}`);
    await eventually(async () => {
      const now = (await identityOf(proxy)).anchors.map((a) => a.fingerprint);
      assert.equal(now.includes(old), false);
      assert.equal(now.length, first.anchors.length);
    });
    assert.equal((await proxy.adminGet('/ready')).status, 200);
  });

  it('keeps its certificate while the control plane is away, and resumes with it once back', async () => {
    const proxy = await startIdentityProxy('patient', BOOKS, await mintToken(BOOKS));
    await eventually(async () => assert.equal((await proxy.adminGet('/ready')).status, 200), {
      timeoutMs: 15_000,
    });
    const first = await identityOf(proxy);
    const identityAddr = control.addresses.identity;
    await control.shutdown();
    await proxy.waitForLog((e) => e.msg === 'trust bundle stream ended; keeping the anchors held');
    assert.equal((await proxy.adminGet('/ready')).status, 200, 'still ready on the leaf it holds');

    // The same state directory (same CA) on the same Identity address.
    const bundlesBefore = proxy.logEntries((e) => e.msg === 'trust bundle received').length;
    control = await startTestControlPlane({
      stateDir: dir,
      log,
      env: { WEFT_CONTROL_IDENTITY_LEAF_TTL: '20s', WEFT_CONTROL_IDENTITY_ADDR: identityAddr },
    });
    await eventually(
      async () => {
        assert.ok(
          proxy.logEntries((e) => e.msg === 'trust bundle received').length > bundlesBefore,
          'stream back',
        );
        const now = await identityOf(proxy);
        assert.ok(Date.parse(now.notAfter as string) > Date.parse(first.notAfter as string), 'renewed');
      },
      { timeoutMs: 25_000, intervalMs: 250 },
    );
    assert.equal((await proxy.adminGet('/ready')).status, 200);
  });

  it('stays not ready when the token is spent, and when the anchors do not verify the service', async () => {
    const token = await mintToken(BOOKS);
    const spender = await startIdentityProxy('spender', BOOKS, token);
    await eventually(async () => assert.equal((await spender.adminGet('/ready')).status, 200), {
      timeoutMs: 15_000,
    });
    const reuse = await startIdentityProxy('reuse', BOOKS, token);
    const foreign = await startIdentityProxy(
      'foreign',
      AUTHORS,
      await mintToken(AUTHORS),
      (await newTestCa('Other')).anchorsPem.join(''),
    );
    for (const p of [reuse, foreign]) {
      await eventually(
        async () =>
          assert.ok(sampleSum(await p.metrics(), 'identity_cert_refresh_total', { result: 'failure' }) >= 2),
        {
          timeoutMs: 15_000,
        },
      );
      assert.equal((await p.adminGet('/ready')).status, 503);
      assert.equal((await identityOf(p)).ready, false);
      assert.equal(sampleSum(await p.metrics(), 'identity_cert_refresh_total', { result: 'ok' }), 0);
    }
    assert.ok(
      reuse.logEntries(
        (e) => e.msg === 'certificate bootstrap failed' && /UNAUTHENTICATED/.test(String(e.error)),
      ).length > 0,
    );
  });
});
