import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { newApiServer } from '../control/api/api-server.js';
import type { Store } from '../store/store.js';
import { openEmbeddedStore } from '../store/store-embedded.js';
import { ApiResponseError, ApiUnreachableError, loadApiClientConfig, newApiClient } from './api-client.js';
import { ConfigError } from './errors.js';
import { newLogger } from './log.js';

const service = (name: string, port = 80) => ({
  apiVersion: 'weft.io/v1alpha1',
  kind: 'Service',
  metadata: { name, namespace: 'shop' },
  spec: { ports: [{ port }] },
});

let root: string;
let store: Store;
let server: Server;
let port: number;

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'weft-api-client-'));
  store = await openEmbeddedStore({ stateDir: root, pollIntervalMs: 0 });
  server = newApiServer(store, newLogger('error'), { maxBodyBytes: 2048 });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});
after(async () => {
  await new Promise((r) => server.close(r));
  await store.close();
  await rm(root, { recursive: true, force: true });
});

describe('api client', () => {
  it('applies, lists, gets and deletes through the real API', async () => {
    const client = newApiClient({ host: '127.0.0.1', port });
    const results = await client.apply([service('a'), service('b')]);
    assert.deepEqual(
      results.map((r) => `${r.resource.metadata.name} ${r.action}`),
      ['a created', 'b created'],
    );
    assert.deepEqual(
      (await client.list('Service', 'shop')).items.map((r) => r.metadata.name),
      ['a', 'b'],
    );
    assert.equal((await client.get('Service', 'shop', 'a'))?.spec.ports[0].port, 80);
    assert.equal(await client.get('Service', 'shop', 'zz'), undefined);
    assert.equal((await client.delete('Service', 'shop', 'a'))?.metadata.name, 'a');
    assert.equal(await client.delete('Service', 'shop', 'a'), undefined);
  });

  it('rejects with typed errors carrying the API code and every problem', async () => {
    const client = newApiClient({ host: '127.0.0.1', port });
    const invalid = await client.apply([service('ok'), service('bad', 0)]).catch((e: unknown) => e);
    assert.ok(invalid instanceof ApiResponseError);
    assert.equal(invalid.code, 'WEFT_ERR_INVALID_RESOURCE');
    assert.equal(invalid.status, 422);
    assert.deepEqual(invalid.problems, [
      { index: 1, path: 'spec.ports[0].port', message: 'must be an integer 1-65535' },
    ]);
    const big = Array.from({ length: 50 }, (_, i) => service(`s-${i}`));
    const tooLarge = await client.apply(big).catch((e: unknown) => e);
    assert.ok(tooLarge instanceof ApiResponseError);
    assert.equal(tooLarge.code, 'WEFT_ERR_BODY_TOO_LARGE');
    assert.equal(tooLarge.status, 413);
  });

  it('rejects with ApiUnreachableError when nothing listens, and parses its address setting', async () => {
    const client = newApiClient({ host: '127.0.0.1', port: 1 });
    const err = await client.list('Service').catch((e: unknown) => e);
    assert.ok(err instanceof ApiUnreachableError);
    assert.equal(err.code, 'WEFT_ERR_API_UNREACHABLE');
    assert.match(
      err.message,
      /^control plane not reachable at 127\.0\.0\.1:1 \(ECONNREFUSED\); start it with `weft up`$/,
    );
    assert.deepEqual(loadApiClientConfig({}).apiAddr, { host: '127.0.0.1', port: 8084 });
    assert.deepEqual(loadApiClientConfig({ WEFT_API_ADDR: '[::1]:9' }).apiAddr, { host: '::1', port: 9 });
    assert.throws(() => loadApiClientConfig({ WEFT_API_ADDR: 'x:y' }), ConfigError);
  });
});
