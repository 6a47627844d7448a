/**
 * `weft control` as a real process: configuration errors reported together (exit 2), the ready
 * line with the bound address, resources already in the state directory served at once, writes
 * by another process (the CLI's `weft apply`) followed, and a clean exit on SIGTERM.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { type DestinationClient, destinationApi, type Update } from '../proto/destination.js';
import type { Store } from '../src/store/store.js';
import { openEmbeddedStore } from '../src/store/store-embedded.js';
import { eventually } from './support/eventually.js';
import { execExitCode } from './support/exec-exit-code.js';
import { WEFT_BIN } from './support/paths.js';

let dir: string;
let store: Store;
let child: ChildProcess | undefined;
let client: DestinationClient | undefined;

const workload = (name: string, address: string) => ({
  apiVersion: 'weft.io/v1alpha1',
  kind: 'Workload',
  metadata: { name },
  spec: { service: 'books', address, port: 4143 },
});

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'weft-control-cli-'));
  store = await openEmbeddedStore({ stateDir: dir });
  await store.apply({
    apiVersion: 'weft.io/v1alpha1',
    kind: 'Service',
    metadata: { name: 'books' },
    spec: { ports: [{ port: 7002 }] },
  });
  await store.apply(workload('books-0', '10.0.0.1'));
});

after(async () => {
  client?.close();
  child?.kill('SIGKILL');
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

describe('weft control', () => {
  it('reports every configuration problem at once and exits 2', async () => {
    const { code, stderr } = await new Promise<{ code: number; stderr: string }>((resolve) =>
      execFile(
        process.execPath,
        [WEFT_BIN, 'control', '--destination-addr', 'nope', '--destination-max-queued-updates', '0'],
        (err, _out, stderr) => resolve({ code: execExitCode(err), stderr }),
      ),
    );
    assert.equal(code, 2);
    assert.match(stderr, /WEFT_CONTROL_DESTINATION_ADDR="nope"/);
    assert.match(stderr, /WEFT_CONTROL_DESTINATION_MAX_QUEUED_UPDATES="0"/);
  });

  it('serves what is stored, follows writes from another process, and drains on SIGTERM', async () => {
    const proc = spawn(
      process.execPath,
      [
        WEFT_BIN,
        'control',
        '--state',
        dir,
        '--destination-addr',
        '127.0.0.1:0',
        '--api-addr',
        '127.0.0.1:0',
        '--identity-addr',
        '127.0.0.1:0',
      ],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    child = proc;
    const lines: Record<string, unknown>[] = [];
    createInterface({ input: proc.stderr! }).on('line', (l) => lines.push(JSON.parse(l)));
    const ready = await eventually(() => {
      const r = lines.find((l) => l.msg === 'control plane ready');
      assert.ok(r, 'no ready line yet');
      return r;
    });
    assert.match(String(ready.destination), /^127\.0\.0\.1:\d+$/);

    client = new (destinationApi().Client)(String(ready.destination), grpc.credentials.createInsecure());
    const seen: string[] = [];
    const call = client.Get({ authority: 'books.default:7002', contextToken: '' });
    call.on('data', (u: Update) => {
      if (u.update === 'add') seen.push(...u.add.addrs.map((a) => a.addr));
    });
    const status = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
    call.on('error', () => {});
    await eventually(() => assert.deepEqual(seen, ['10.0.0.1:4143']));

    await store.apply(workload('books-1', '10.0.0.2')); // this process is "another writer"
    await eventually(() => assert.deepEqual(seen, ['10.0.0.1:4143', '10.0.0.2:4143']), { timeoutMs: 5000 });

    // The public API is served too: `weft apply` and `weft get` through it reach the same store.
    assert.match(String(ready.api), /^127\.0\.0\.1:\d+$/);
    const file = join(dir, 'books-2.yaml');
    await writeFile(
      file,
      'apiVersion: weft.io/v1alpha1\nkind: Workload\nmetadata: { name: books-2 }\nspec: { service: books, address: 10.0.0.3, port: 4143 }\n',
    );
    const applied = await cli(['apply', '-f', file, '--api-addr', String(ready.api)]);
    assert.equal(applied.code, 0, applied.stderr);
    await eventually(() => assert.deepEqual(seen, ['10.0.0.1:4143', '10.0.0.2:4143', '10.0.0.3:4143']), {
      timeoutMs: 5000,
    });
    const got = await cli(['get', 'workloads', '--api-addr', String(ready.api)]);
    assert.equal(got.code, 0, got.stderr);
    assert.match(got.stdout, /books-2/);

    const exited = new Promise<number | null>((resolve) => proc.once('exit', resolve));
    proc.kill('SIGTERM');
    assert.equal(await exited, 0);
    assert.equal((await status).code, grpc.status.UNAVAILABLE, 'open streams are ended so clients reconnect');
    assert.ok(lines.some((l) => l.msg === 'control plane shut down'));
    child = undefined;
  });
});

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile(process.execPath, [WEFT_BIN, ...args], { timeout: 15_000 }, (err, stdout, stderr) =>
      resolve({ code: execExitCode(err), stdout, stderr }),
    ),
  );
}
