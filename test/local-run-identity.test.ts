/**
 * `weft run` gives every workload an identity (docs/identity.md): the account defaults to the
 * service name, the Workload carries its SPIFFE ID, and the proxy is started with a one-time token
 * and the trust bundle from a private directory that is removed as soon as the proxy is ready;
 * the proxy (src/proxy/identity/) then certifies with the token.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import type { RunningControlPlane } from '../src/control/control-plane.js';
import { parseHostPort } from '../src/lib/addr.js';
import { newApiClient } from '../src/lib/api-client.js';
import { newLogger } from '../src/lib/log.js';
import { prepareWorkloadIdentity } from '../src/platform/local/workload-identity.js';
import { startTestControlPlane } from './support/control-plane.js';
import { eventually } from './support/eventually.js';
import { fixturePath, WEFT_BIN } from './support/paths.js';

const APP = fixturePath('run-app.mjs');
let dir: string;
let control: RunningControlPlane;
let run: ChildProcess | undefined;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'weft-run-identity-test-'));
  control = await startTestControlPlane({ stateDir: dir, log: newLogger('error', {}, () => {}) });
});

after(async () => {
  if (run && run.exitCode === null && run.signalCode === null) run.kill('SIGKILL');
  await control?.shutdown();
  await rm(dir, { recursive: true, force: true });
});

/** The environment of a running process, from /proc. */
async function environOf(pid: number): Promise<Record<string, string>> {
  const raw = await readFile(`/proc/${pid}/environ`, 'utf8');
  return Object.fromEntries(
    raw
      .split('\0')
      .filter((kv) => kv.includes('='))
      .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
  );
}

describe('weft run and identity', () => {
  it('prepares a token and the trust bundle in a private dir (0700, files 0600)', async () => {
    const books = 'spiffe://weft.local/ns/default/sa/books';
    const files = await prepareWorkloadIdentity(parseHostPort(control.addresses.api), 'default', 'books');
    try {
      assert.equal(files.identity, books);
      assert.equal(files.identityAddr, control.addresses.identity);
      assert.equal(dirname(files.tokenFile), dirname(files.trustAnchorsFile));
      assert.equal((await stat(dirname(files.tokenFile))).mode & 0o777, 0o700);
      assert.equal((await stat(files.tokenFile)).mode & 0o777, 0o600);
      assert.equal((await stat(files.trustAnchorsFile)).mode & 0o777, 0o600);
      assert.equal(
        await readFile(files.trustAnchorsFile, 'utf8'),
        control.identity.ca.bundle().anchorPems.join(''),
      );
      const token = await readFile(files.tokenFile, 'utf8');
      assert.match(token, /^[A-Za-z0-9_-]{43}$/);
      await control.identity.tokens.validate(token, books, 'any key'); // minted for books, unused so far
    } finally {
      await files.remove();
    }
    await assert.rejects(stat(dirname(files.tokenFile)), { code: 'ENOENT' });
  });

  it('starts the proxy with the identity of <service>, and the token leaves the disk once it is ready', async () => {
    const child = spawn(
      process.execPath,
      [
        WEFT_BIN,
        'run',
        '--api-addr',
        control.addresses.api,
        '--destination-addr',
        control.addresses.destination,
        '--service',
        'books',
        '--',
        'node',
        APP,
        'books-1',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    run = child;
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const logs: Record<string, unknown>[] = [];
    createInterface({ input: child.stderr! }).on('line', (l) => {
      try {
        logs.push(JSON.parse(l));
      } catch {}
    });
    const reg = await eventually(
      () => {
        const e = logs.find((l) => l.msg === 'workload registered');
        assert.ok(e, 'not registered yet');
        return e;
      },
      { timeoutMs: 15_000 },
    );
    const books = 'spiffe://weft.local/ns/default/sa/books';
    assert.equal(reg.identity, books);
    const api = newApiClient(parseHostPort(control.addresses.api));
    const w = await api.get('Workload', 'default', String(reg.workload));
    assert.equal(w?.spec.identity, books);

    const env = await environOf(Number(reg.proxyPid));
    assert.equal(env.WEFT_PROXY_IDENTITY, books);
    assert.equal(env.WEFT_PROXY_IDENTITY_ADDR, control.addresses.identity);
    assert.match(env.WEFT_PROXY_IDENTITY_TRUST_ANCHORS_FILE, /trust-anchors\.pem$/);
    await assert.rejects(stat(dirname(env.WEFT_PROXY_IDENTITY_TOKEN_FILE)), { code: 'ENOENT' });

    // The proxy spent the token on its first Certify and holds a certificate for books.
    const held = await eventually(async () => {
      const res = await fetch(`http://${reg.admin}/identity`);
      const body = (await res.json()) as { identity?: string; ready?: boolean };
      assert.equal(body.ready, true);
      return body;
    });
    assert.equal(held.identity, books);
    assert.ok((control.identity.server.counts().ok ?? 0) >= 1, 'the proxy certified');

    child.kill('SIGTERM');
    assert.equal(await exited, 0);
  });
});
