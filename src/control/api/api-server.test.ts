import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import type { Server } from 'node:http';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { newLogger } from '../../lib/log.js';
import type { Store } from '../../store/store.js';
import { openEmbeddedStore } from '../../store/store-embedded.js';
import { StoreLockedError } from '../../store/store-error.js';
import { newApiServer } from './api-server.js';

const service = (name: string, port = 80, namespace = 'shop') => ({
  apiVersion: 'weft.io/v1alpha1',
  kind: 'Service',
  metadata: { name, namespace },
  spec: { ports: [{ port, protocol: 'http' }] },
});
const workload = (name: string, svc: string, namespace = 'shop') => ({
  apiVersion: 'weft.io/v1alpha1',
  kind: 'Workload',
  metadata: { name, namespace },
  spec: { service: svc, address: '127.0.0.1', port: 4143 },
});

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  // biome-ignore lint/suspicious/noExplicitAny: JSON answers are inspected field by field
  json: any;
}

let root: string;
let store: Store;
let server: Server;
let port: number;
const logs: string[] = [];

/** One request over a fresh connection; `body` is sent as JSON unless it is a Buffer. */
function call(
  method: string,
  path: string,
  body?: unknown,
  headers: http.OutgoingHttpHeaders = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const payload =
      body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body));
    const req = http.request({ host: '127.0.0.1', port, method, path, agent: false, headers });
    let answered = false;
    req.on('response', (res) => {
      answered = true;
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          json: text === '' ? undefined : JSON.parse(text),
        });
      });
    });
    req.on('error', (err) => {
      if (!answered) reject(err);
    });
    req.end(payload);
  });
}

async function startServer(s: Store, options = {}): Promise<void> {
  server = newApiServer(
    s,
    newLogger('debug', {}, (l) => logs.push(l)),
    options,
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
}

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'weft-api-'));
});
let n = 0;
async function freshStore(): Promise<Store> {
  store = await openEmbeddedStore({ stateDir: join(root, `s${n++}`), pollIntervalMs: 0 });
  return store;
}
afterEach(async () => {
  await new Promise((r) => server.close(r));
  await store.close();
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('api server', () => {
  it('answers /healthz, applies, lists, gets and deletes', async () => {
    await startServer(await freshStore());
    assert.deepEqual((await call('GET', '/healthz')).json, { status: 'ok' });

    const applied = await call('PUT', '/api/v1/apply', {
      resources: [service('books'), workload('books-0', 'books'), service('books', 81, 'other')],
    });
    assert.equal(applied.status, 200);
    assert.deepEqual(
      applied.json.results.map((r: { index: number; action: string }) => `${r.index} ${r.action}`),
      ['0 created', '1 created', '2 created'],
    );
    assert.equal(applied.json.results[1].resource.metadata.resourceVersion, '2');

    const again = await call('PUT', '/api/v1/apply', {
      resources: [service('books'), service('books', 82, 'other')],
    });
    assert.deepEqual(
      again.json.results.map((r: { action: string }) => r.action),
      ['unchanged', 'configured'],
    );

    const all = await call('GET', '/api/v1/services');
    assert.equal(all.status, 200);
    assert.match(all.headers['content-type'] ?? '', /^application\/json/);
    assert.deepEqual(
      all.json.items.map((r: { metadata: { namespace: string } }) => r.metadata.namespace),
      ['other', 'shop'],
    );
    assert.equal(all.json.resourceVersion, '4');
    const shop = await call('GET', '/api/v1/services?namespace=shop');
    assert.deepEqual(shop.json.items.length, 1);
    assert.equal((await call('GET', '/api/v1/workloads')).json.items[0].spec.service, 'books');
    assert.deepEqual((await call('GET', '/api/v1/httproutes')).json.items, []);

    const one = await call('GET', '/api/v1/namespaces/shop/workloads/books-0');
    assert.equal(one.status, 200);
    assert.equal(one.json.metadata.name, 'books-0');

    const deleted = await call('DELETE', '/api/v1/namespaces/shop/workloads/books-0');
    assert.equal(deleted.status, 200);
    assert.equal(deleted.json.metadata.name, 'books-0');
    assert.equal(await store.get('Workload', 'shop', 'books-0'), undefined);
  });

  it('answers 404 for a missing resource, an unknown kind or path, and 405 with Allow', async () => {
    await startServer(await freshStore());
    const missing = await call('GET', '/api/v1/namespaces/shop/services/nope');
    assert.equal(missing.status, 404);
    assert.deepEqual(missing.json, {
      error: { code: 'WEFT_ERR_NOT_FOUND', message: 'Service shop/nope not found' },
    });
    const gone = await call('DELETE', '/api/v1/namespaces/shop/services/nope');
    assert.equal(gone.status, 404);
    assert.equal(gone.json.error.code, 'WEFT_ERR_NOT_FOUND');
    const kind = await call('GET', '/api/v1/gadgets');
    assert.equal(kind.status, 404);
    assert.equal(kind.json.error.code, 'WEFT_ERR_UNKNOWN_KIND');
    assert.equal((await call('GET', '/api/v1/Services')).json.error.code, 'WEFT_ERR_UNKNOWN_KIND');
    assert.equal((await call('GET', '/nope')).json.error.code, 'WEFT_ERR_NOT_FOUND');
    const method = await call('POST', '/api/v1/apply', { resources: [] });
    assert.equal(method.status, 405);
    assert.equal(method.headers.allow, 'PUT');
    assert.equal(method.json.error.code, 'WEFT_ERR_METHOD_NOT_ALLOWED');
    assert.equal((await call('PUT', '/api/v1/namespaces/a/services/b')).headers.allow, 'GET, DELETE');
  });

  it('rejects an apply with any invalid resource with 422 listing every problem, and applies nothing', async () => {
    await startServer(await freshStore());
    await call('PUT', '/api/v1/apply', { resources: [service('kept')] });
    const before = store.stats().resourceVersion;
    const bad = await call('PUT', '/api/v1/apply', {
      resources: [
        service('fine'),
        { ...service('bad-port'), spec: { ports: [{ port: 70000 }] } },
        workload('w', 'Not_A_Name'),
        service('fine'),
        { kind: 'Gadget' },
      ],
    });
    assert.equal(bad.status, 422);
    assert.equal(bad.json.error.code, 'WEFT_ERR_INVALID_RESOURCE');
    assert.deepEqual(bad.json.errors, [
      { index: 1, path: 'spec.ports[0].port', message: 'must be an integer 1-65535' },
      {
        index: 2,
        path: 'spec.service',
        message: 'must be a DNS-1123 label (lower case a-z, 0-9 and "-", at most 63 characters)',
      },
      { index: 3, path: '', message: 'Service shop/fine is also resources[0]' },
      {
        index: 4,
        path: 'kind',
        message:
          'must be one of Service, Workload, Server, AuthorizationPolicy, Profile, HTTPRoute, GRPCRoute, Namespace',
      },
      { index: 4, path: 'metadata', message: 'must be a mapping with at least a name' },
      { index: 4, path: 'spec', message: 'must be a mapping' },
    ]);
    assert.equal(store.stats().resourceVersion, before);
    assert.deepEqual(
      (await store.list('Service')).items.map((r) => r.metadata.name),
      ['kept'],
    );
  });

  it('rejects a stale resourceVersion with 409 before applying anything', async () => {
    await startServer(await freshStore());
    await call('PUT', '/api/v1/apply', { resources: [service('a')] });
    await call('PUT', '/api/v1/apply', { resources: [service('a', 81)] });
    const stale = { ...service('a', 82), metadata: { name: 'a', namespace: 'shop', resourceVersion: '1' } };
    const res = await call('PUT', '/api/v1/apply', { resources: [service('b'), stale] });
    assert.equal(res.status, 409);
    assert.equal(res.json.error.code, 'WEFT_ERR_CONFLICT');
    assert.equal(await store.get('Service', 'shop', 'b'), undefined);
  });

  it('answers 400 for a body that is not { resources: [...] } JSON', async () => {
    await startServer(await freshStore());
    const notJson = await call('PUT', '/api/v1/apply', Buffer.from('{"resources": ['));
    assert.equal(notJson.status, 400);
    assert.equal(notJson.json.error.code, 'WEFT_ERR_BAD_REQUEST');
    assert.equal((await call('PUT', '/api/v1/apply', [service('a')])).status, 400);
    assert.equal((await call('PUT', '/api/v1/apply', { resources: {} })).status, 400);
    assert.equal((await call('GET', '/api/v1/namespaces/%E0%A4%A/services/x')).status, 400);
  });

  it('answers 413 to a body over 4 MiB, declared or chunked, and applies nothing', async () => {
    await startServer(await freshStore());
    const big = Buffer.alloc(4 * 1024 * 1024 + 1, ' ');
    const declared = await call('PUT', '/api/v1/apply', big, { 'content-length': big.length });
    assert.equal(declared.status, 413);
    assert.equal(declared.json.error.code, 'WEFT_ERR_BODY_TOO_LARGE');
    assert.equal(declared.headers.connection, 'close');
    // Valid JSON just over the bound, sent chunked (no content-length).
    const padded = `{"resources": [${JSON.stringify(service('x'))}], "pad": "${'p'.repeat(4 * 1024 * 1024)}"}`;
    const chunked = await call('PUT', '/api/v1/apply', Buffer.from(padded), {
      'transfer-encoding': 'chunked',
    });
    assert.equal(chunked.status, 413);
    assert.equal((await store.list('Service')).items.length, 0);
    // A body just under the bound is accepted.
    const fits = `{"resources": [${JSON.stringify(service('x'))}], "pad": "${'p'.repeat(4 * 1024 * 1024 - 200)}"}`;
    assert.equal((await call('PUT', '/api/v1/apply', Buffer.from(fits))).status, 200);
  });

  it('reports which resources were applied when the store fails part-way', async () => {
    // The real store, with a failure injected into the third write (as a full disk would cause).
    const real = await freshStore();
    let writes = 0;
    const failing: Store = {
      get: (kind, namespace, name) => real.get(kind, namespace, name),
      list: (kind, namespace) => real.list(kind, namespace),
      apply: (r) =>
        ++writes === 3 ? Promise.reject(new StoreLockedError('lock', 'pid 1', 10)) : real.apply(r),
      delete: (kind, namespace, name) => real.delete(kind, namespace, name),
      watch: (kind, options, listener) => real.watch(kind, options, listener),
      stats: () => real.stats(),
      close: () => real.close(),
    };
    await startServer(failing);
    const res = await call('PUT', '/api/v1/apply', {
      resources: [service('a'), service('b'), service('c'), service('d')],
    });
    assert.equal(res.status, 503);
    assert.equal(res.json.error.code, 'WEFT_ERR_STORE_LOCKED');
    assert.match(res.json.error.message, /resources\[2\] failed after 2 resource\(s\) were applied/);
    assert.deepEqual(
      res.json.applied.map((r: { resource: { metadata: { name: string } } }) => r.resource.metadata.name),
      ['a', 'b'],
    );
    assert.deepEqual(
      (await real.list('Service')).items.map((r) => r.metadata.name),
      ['a', 'b'],
    );
    assert.ok(logs.some((l) => l.includes('apply failed part-way')));
  });

  it('answers 503 with the store code once the store is closed', async () => {
    await startServer(await freshStore());
    await store.close();
    const res = await call('GET', '/api/v1/services');
    assert.equal(res.status, 503);
    assert.deepEqual(res.json, { error: { code: 'WEFT_ERR_STORE_CLOSED', message: 'store is closed' } });
  });
});
