/**
 * `weft apply`, `weft get` and `weft delete` as a user runs them: the real CLI as a child process
 * against the real API server (started here on 127.0.0.1:0) over a real embedded store.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { newApiServer } from '../src/control/api/api-server.js';
import { newLogger } from '../src/lib/log.js';
import type { Store } from '../src/store/store.js';
import { openEmbeddedStore } from '../src/store/store-embedded.js';
import { closedPort } from './support/closed-port.js';
import { WEFT_BIN } from './support/paths.js';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

let root: string;
let store: Store;
let server: http.Server;
let apiAddr: string;

/** Runs `weft ARGS...` with WEFT_API_ADDR pointing at the test's API server (unless overridden). */
function weft(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [WEFT_BIN, ...args], {
      env: { ...process.env, WEFT_API_ADDR: apiAddr, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c));
    child.stderr.on('data', (c: Buffer) => (stderr += c));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

async function writeFiles(dir: string, files: Record<string, string[]>): Promise<string> {
  await mkdir(dir, { recursive: true });
  for (const [name, lines] of Object.entries(files)) await writeFile(join(dir, name), lines.join('\n'));
  return dir;
}

const BOOKS = [
  'apiVersion: weft.io/v1alpha1',
  'kind: Service',
  'metadata: { name: books, namespace: shop }',
  'spec:',
  '  ports: [{ port: 7002, protocol: grpc }]',
  '---',
  'apiVersion: weft.io/v1alpha1',
  'kind: Workload',
  'metadata: { name: books-0, namespace: shop }',
  'spec: { service: books, address: 127.0.0.1, port: 4143 }',
];
const AUTHORS = [
  'apiVersion: weft.io/v1alpha1',
  'kind: Service',
  'metadata: { name: authors, namespace: other }',
  'spec: { ports: [{ port: 7001, protocol: http }] }',
];

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'weft-cli-'));
  store = await openEmbeddedStore({ stateDir: join(root, 'state'), pollIntervalMs: 0 });
  server = newApiServer(store, newLogger('error'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  apiAddr = `127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(async () => {
  await new Promise((r) => server.close(r));
  await store.close();
  await rm(root, { recursive: true, force: true });
});

describe('weft apply / get / delete', () => {
  it('applies a directory of YAML files, and get shows them as a table, YAML and JSON', async () => {
    const dir = await writeFiles(join(root, 'good'), {
      'books.yaml': BOOKS,
      'authors.yml': AUTHORS,
      'notes.txt': ['not a resource file: ignored'],
    });
    const applied = await weft(['apply', '-f', dir]);
    assert.equal(applied.code, 0, applied.stderr);
    assert.equal(
      applied.stdout,
      'Service other/authors created\nService shop/books created\nWorkload shop/books-0 created\n',
    );
    const again = await weft(['apply', '-f', join(dir, 'books.yaml')]);
    assert.equal(again.stdout, 'Service shop/books unchanged\nWorkload shop/books-0 unchanged\n');

    const table = await weft(['get', 'services']);
    assert.equal(table.code, 0, table.stderr);
    const rows = table.stdout
      .trimEnd()
      .split('\n')
      .map((l) => l.split(/\s{3,}/));
    assert.deepEqual(rows[0], ['NAMESPACE', 'NAME', 'PORTS', 'AGE']);
    assert.deepEqual(
      rows.slice(1).map((r) => r.slice(0, 3)),
      [
        ['other', 'authors', '7001/http'],
        ['shop', 'books', '7002/grpc'],
      ],
    );
    assert.match(rows[1][3], /^\d+s$/);
    const workloads = await weft(['get', 'wl', '-n', 'shop']);
    assert.match(
      workloads.stdout,
      /^NAMESPACE\s+NAME\s+SERVICE\s+ADDRESS\s+AGE\nshop\s+books-0\s+books\s+127\.0\.0\.1:4143\s+\d+s\n$/,
    );

    const yaml = await weft(['get', 'service', '-n', 'shop', '-o', 'yaml']);
    const docs = parseAllDocuments(yaml.stdout);
    assert.ok(Array.isArray(docs));
    assert.deepEqual(
      docs.map((d) => d.toJS().metadata.name),
      ['books'],
    );
    const one = JSON.parse((await weft(['get', 'Workload', 'books-0', '-n', 'shop', '-o', 'json'])).stdout);
    assert.deepEqual(one.spec, { service: 'books', address: '127.0.0.1', port: 4143 });
    assert.equal(one.metadata.resourceVersion, '3');
    const list = JSON.parse((await weft(['get', 'svc', '-o', 'json'])).stdout);
    assert.equal(list.kind, 'List');
    assert.deepEqual(
      list.items.map((r: { metadata: { name: string } }) => r.metadata.name),
      ['authors', 'books'],
    );

    const empty = await weft(['get', 'httproutes']);
    assert.equal(empty.code, 0, empty.stderr);
    assert.equal(empty.stdout, '');
    assert.equal(empty.stderr, 'No resources found.\n');
    const missing = await weft(['get', 'service', 'nope']);
    assert.equal(missing.code, 1, missing.stderr);
    assert.equal(missing.stderr, 'error: Service default/nope not found\n');
    const kind = await weft(['get', 'gadgets']);
    assert.equal(kind.code, 1, kind.stderr);
    assert.match(kind.stderr, /^error: unknown kind "gadgets" \(one of services, workloads/);
  });

  it('names file, line and field of every problem, exits 1 and sends nothing', async () => {
    const dir = await writeFiles(join(root, 'bad'), {
      'a-fine.yaml': [
        'apiVersion: weft.io/v1alpha1',
        'kind: Service',
        'metadata: { name: fine, namespace: shop }',
        'spec: { ports: [{ port: 80 }] }',
      ],
      'b-broken.yaml': [
        'apiVersion: weft.io/v1alpha1', // 1
        'kind: Service', // 2
        'metadata:', // 3
        '  name: broken', // 4
        'spec:', // 5
        '  ports:', // 6
        '    - port: 70000', // 7
        '---', // 8
        'apiVersion: weft.io/v1alpha1', // 9
        'kind: Workload', // 10
        'metadata: { name: w-0 }', // 11
        'spec: { service: broken, address: "not an address" }', // 12
      ],
    });
    const before = store.stats().resourceVersion;
    const res = await weft(['apply', '-f', dir]);
    assert.equal(res.code, 1, res.stderr);
    assert.equal(res.stdout, '');
    const broken = join(dir, 'b-broken.yaml');
    assert.equal(
      res.stderr,
      'error: 2 problems found, nothing was applied:\n' +
        `  ${broken}:7: spec.ports[0].port: must be an integer 1-65535\n` +
        `  ${broken}:12: spec.address: must be an IP address or a host name\n`,
    );
    assert.equal(store.stats().resourceVersion, before);
    assert.equal(await store.get('Service', 'shop', 'fine'), undefined);

    const absent = await weft(['apply', '-f', join(root, 'absent.yaml')]);
    assert.equal(absent.code, 1, absent.stderr);
    assert.match(absent.stderr, /absent\.yaml: no such file or directory/);
    const noFlag = await weft(['apply']);
    assert.notEqual(noFlag.code, 0);
    assert.match(noFlag.stderr, /required option '-f, --filename <file\|dir>' not specified/);
  });

  it('deletes a resource, and says so when it does not exist', async () => {
    const file = join(await writeFiles(join(root, 'del'), { 'w.yaml': BOOKS }), 'w.yaml');
    assert.equal((await weft(['apply', '-f', file])).code, 0);
    const del = await weft(['delete', 'workload', 'books-0', '-n', 'shop']);
    assert.equal(del.code, 0, del.stderr);
    assert.equal(del.stdout, 'Workload shop/books-0 deleted\n');
    assert.equal(await store.get('Workload', 'shop', 'books-0'), undefined);
    const again = await weft(['delete', 'workload', 'books-0', '-n', 'shop']);
    assert.equal(again.code, 1, again.stderr);
    assert.equal(again.stderr, 'error: Workload shop/books-0 not found\n');
  });

  it('says clearly that the control plane is not reachable', async () => {
    const closed = `127.0.0.1:${await closedPort()}`;
    const msg = `error: control plane not reachable at ${closed} (ECONNREFUSED); start it with \`weft up\`\n`;

    const get = await weft(['get', 'services'], { WEFT_API_ADDR: closed });
    assert.equal(get.code, 1, get.stderr);
    assert.equal(get.stderr, msg);
    const file = join(root, 'good', 'authors.yml');
    const apply = await weft(['apply', '-f', file, '--api-addr', closed], { WEFT_API_ADDR: apiAddr });
    assert.equal(apply.code, 1, apply.stderr);
    assert.equal(apply.stderr, msg);
    const del = await weft(['delete', 'svc', 'x'], { WEFT_API_ADDR: closed });
    assert.equal(del.stderr, msg);

    const badAddr = await weft(['get', 'services'], { WEFT_API_ADDR: 'nope:port' });
    assert.equal(badAddr.code, 2, badAddr.stderr);
    assert.match(badAddr.stderr, /WEFT_API_ADDR="nope:port"/);
  });
});
