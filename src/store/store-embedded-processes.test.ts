/** The embedded store with real concurrent and crashing writer processes on one state directory. */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { onceLine } from '../../test/support/eventually.js';
import type { Resource } from './resource.js';
import { openEmbeddedStore } from './store-embedded.js';
import { StoreError } from './store-error.js';

const WRITER = fileURLToPath(new URL('./fixtures/apply-many.js', import.meta.url));

let root: string;
let n = 0;
const children: ChildProcess[] = [];

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'weft-store-proc-'));
});
after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await rm(root, { recursive: true, force: true });
});

/** Starts the writer fixture and waits until it has opened the store. */
async function startWriter(stateDir: string, prefix: string, count: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, [WRITER, stateDir, prefix, count], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  children.push(child);
  await onceLine(child.stdout!, (l) => l === 'ready', 20_000);
  return child;
}

/** A pid that certainly belonged to a process that has exited. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '']);
  await once(child, 'exit');
  return child.pid!;
}

describe('embedded store: several processes', () => {
  it('two processes applying 200 resources each at once end with all 400 and a valid state file', async () => {
    const stateDir = join(root, `s${n++}`);
    const writers = await Promise.all([
      startWriter(stateDir, 'left', '200'),
      startWriter(stateDir, 'right', '200'),
    ]);
    const exits = writers.map((w) => once(w, 'exit'));
    for (const w of writers) w.stdin!.write('go\n');
    for (const [code] of await Promise.all(exits)) assert.equal(code, 0);

    const state = JSON.parse(await readFile(join(stateDir, 'state.json'), 'utf8'));
    assert.equal(state.resourceVersion, 400);
    assert.equal(state.resources.length, 400);
    const store = await openEmbeddedStore({ stateDir });
    const { items, resourceVersion } = await store.list('Service', 'load');
    assert.equal(resourceVersion, '400');
    assert.equal(items.length, 400);
    for (const prefix of ['left', 'right'])
      for (let i = 0; i < 200; i++)
        assert.ok(await store.get('Service', 'load', `${prefix}-${i}`), `${prefix}-${i}`);
    const order: string[] = state.history.map(
      (c: { object: Resource }) => c.object.metadata.name.split('-')[0],
    );
    const switches = order.filter((w, i) => i > 0 && w !== order[i - 1]).length;
    assert.ok(switches > 1, `the two writers interleaved (${switches} switches)`);
    const versions = new Set(items.map((r) => r.metadata.resourceVersion));
    assert.equal(versions.size, 400, 'every change got its own resourceVersion');
    await store.close();
    assert.deepEqual(await readdir(stateDir), ['state.json'], 'no lock or temporary file left');
  });

  it('a writer killed mid-stream leaves a readable state that the next writer continues', async () => {
    const stateDir = join(root, `s${n++}`);
    const writer = await startWriter(stateDir, 'k', 'forever');
    writer.stdin!.write('go\n');
    await onceLine(writer.stdout!, (l) => l === 'applied 25', 20_000);
    writer.kill('SIGKILL');
    await once(writer, 'exit');

    const store = await openEmbeddedStore({ stateDir, lockTimeoutMs: 5_000 });
    const { items, resourceVersion } = await store.list('Service', 'load');
    assert.ok(items.length >= 25, `${items.length} resources survived`);
    assert.equal(resourceVersion, String(items.length), 'one change per resource, none lost or half-applied');
    // The killed writer may have left its lock and a temp file; neither blocks the next writer.
    const next = await store.apply({
      apiVersion: 'weft.io/v1alpha1',
      kind: 'Service',
      metadata: { name: 'after', namespace: 'load' },
      spec: { ports: [{ port: 80 }] },
    });
    assert.equal(next.metadata.resourceVersion, String(items.length + 1));
    await store.close();
  });

  it('breaks a lock left by a dead process, and waits (then fails, coded) for a live one', async () => {
    const stateDir = join(root, `s${n++}`);
    const store = await openEmbeddedStore({ stateDir, lockTimeoutMs: 300 });
    const svc = (name: string) => ({
      apiVersion: 'weft.io/v1alpha1',
      kind: 'Service',
      metadata: { name },
      spec: { ports: [{ port: 80 }] },
    });
    await writeFile(join(stateDir, 'state.lock'), `${await deadPid()} stale\n`);
    assert.equal((await store.apply(svc('a'))).metadata.resourceVersion, '1');

    const holder = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)']);
    children.push(holder);
    await once(holder, 'spawn');
    await writeFile(join(stateDir, 'state.lock'), `${holder.pid} live\n`);
    await assert.rejects(store.apply(svc('b')), (err) => {
      assert.ok(err instanceof StoreError);
      assert.equal(err.code, 'WEFT_ERR_STORE_LOCKED');
      return true;
    });
    holder.kill('SIGKILL');
    await once(holder, 'exit');
    assert.equal((await store.apply(svc('b'))).metadata.resourceVersion, '2');
    await store.close();
  });
});
