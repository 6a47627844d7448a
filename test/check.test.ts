/**
 * `weft check` as a user runs it: the real CLI as a child process against a real control plane
 * (in this process) and a real proxy holding a certificate from it (docs/identity.md). A healthy
 * mesh passes with exit code 0; a Workload whose proxy is gone, or an AuthorizationPolicy aimed at
 * a Server that does not exist, fails with exit code 1 and is named.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { RunningControlPlane } from '../src/control/control-plane.js';
import { newLogger } from '../src/lib/log.js';
import { type HttpApp, startHttpApp } from './support/app-http.js';
import { closedPort } from './support/closed-port.js';
import { startTestControlPlane } from './support/control-plane.js';
import { spiffe, startMeshedProxy } from './support/meshed-proxy.js';
import { WEFT_BIN } from './support/paths.js';
import type { ProxyProcess } from './support/proxy-process.js';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

let dir: string;
let control: RunningControlPlane;
let proxy: ProxyProcess | undefined;
let app: HttpApp;

/** `weft check` with the control plane's addresses; killed after 30 s (then code is null). */
function check(args: string[] = []): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [
        WEFT_BIN,
        'check',
        '--api-addr',
        control.addresses.api,
        '--destination-addr',
        control.addresses.destination,
        ...args,
      ],
      { env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c));
    child.stderr.on('data', (c: Buffer) => (stderr += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const r = (kind: string, name: string, spec: unknown) => ({
  apiVersion: 'weft.io/v1alpha1',
  kind,
  metadata: { name, namespace: 'default' },
  spec,
});

describe('weft check', () => {
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'weft-check-'));
    control = await startTestControlPlane({
      stateDir: dir,
      log: newLogger('error', {}, () => {}),
      // Keep the Workload whose proxy is gone: the check, not the garbage collector, must find it.
      env: { WEFT_CONTROL_WORKLOAD_GC_AFTER_MS: '0' },
    });
    app = await startHttpApp();
    proxy = await startMeshedProxy(control, 'books', ['--app-port', String(app.port)]);
    for (const res of [
      r('Service', 'books', { ports: [{ port: app.port }] }),
      r('Workload', 'books-0', {
        service: 'books',
        address: '127.0.0.1',
        port: Number(proxy.inbound?.split(':')[1]),
        identity: spiffe('books'),
        adminAddress: proxy.admin,
      }),
      r('Server', 'books-http', { selector: { service: 'books' }, port: app.port }),
      r('AuthorizationPolicy', 'anyone-reads-books', {
        targetRef: { kind: 'Server', name: 'books-http' },
        from: [{ unauthenticated: true }],
      }),
    ])
      await control.store.apply(res as never);
  });
  after(async () => {
    await proxy?.stop();
    await app?.close();
    await control?.shutdown();
    await rm(dir, { recursive: true, force: true });
  });

  it('passes on a healthy mesh: exit 0, every check ok', async () => {
    const run = await check();
    assert.equal(run.code, 0, `${run.stdout}${run.stderr}`);
    for (const line of [
      '[ok]   API: answers at',
      '[ok]   Destination: gRPC answers at',
      '[ok]   Identity: TLS at',
      '[ok]   issuer generation 1',
      `[ok]   workload default/books-0: ${spiffe('books')}, certificate valid until`,
      `[ok]   Server default/books-http: selects port ${app.port} of Service books`,
      '[ok]   AuthorizationPolicy default/anyone-reads-books: targets Server books-http',
    ])
      assert.ok(run.stdout.includes(line), `missing ${JSON.stringify(line)} in:\n${run.stdout}`);
    assert.match(run.stdout, /\[ok\] {3}trust anchor [0-9a-f]{16}: valid until/);
    assert.doesNotMatch(run.stdout, /\[(warn|fail)\]/);
    assert.match(run.stdout, /summary: \d+ ok, 0 warnings, 0 failed: passed\n$/);
    assert.ok(!run.stdout.includes('\u001b['), 'no colour when stdout is not a TTY');
  });

  it('-o json reports the same checks', async () => {
    const run = await check(['-o', 'json']);
    assert.equal(run.code, 0, run.stderr);
    const report = JSON.parse(run.stdout) as {
      checks: { subject: string; status: string }[];
      summary: { fail: number };
    };
    assert.equal(report.summary.fail, 0);
    assert.equal(report.checks.find((c) => c.subject === 'workload default/books-0')?.status, 'ok');
    assert.ok(
      report.checks.every((c) => c.status === 'ok'),
      run.stdout,
    );
  });

  it('fails (exit 1) on a Workload whose proxy does not answer, naming it and its address', async () => {
    const port = await closedPort();
    await control.store.apply(
      r('Workload', 'books-1', {
        service: 'books',
        address: '127.0.0.1',
        port: 4143,
        identity: spiffe('books'),
        adminAddress: `127.0.0.1:${port}`,
      }) as never,
    );
    try {
      const run = await check();
      assert.equal(run.code, 1, run.stdout);
      assert.ok(
        run.stdout.includes(
          `[fail] workload default/books-1: proxy not reachable at 127.0.0.1:${port} (ECONNREFUSED)`,
        ),
        run.stdout,
      );
      assert.ok(run.stdout.includes('[ok]   workload default/books-0:'), 'the live proxy still passes');
      assert.match(run.stdout, /summary: \d+ ok, 0 warnings, 1 failed: FAILED\n$/);
    } finally {
      await control.store.delete('Workload', 'default', 'books-1');
    }
  });

  it('fails (exit 1) on a proxy whose certificate names another identity than its Workload', async () => {
    await control.store.apply(
      r('Workload', 'authors-0', {
        service: 'books',
        address: '127.0.0.1',
        port: 4143,
        identity: spiffe('authors'),
        adminAddress: proxy?.admin,
      }) as never,
    );
    try {
      const run = await check();
      assert.equal(run.code, 1, run.stdout);
      assert.ok(
        run.stdout.includes(
          `[fail] workload default/authors-0: proxy identity is ${spiffe('books')}, but the Workload expects ${spiffe('authors')}`,
        ),
        run.stdout,
      );
    } finally {
      await control.store.delete('Workload', 'default', 'authors-0');
    }
  });

  it('fails (exit 1) on an AuthorizationPolicy targeting a missing Server, naming both', async () => {
    await control.store.apply(
      r('AuthorizationPolicy', 'typo', {
        targetRef: { kind: 'Server', name: 'books-htp' },
        from: [{ unauthenticated: true }],
      }) as never,
    );
    try {
      const run = await check();
      assert.equal(run.code, 1, run.stdout);
      assert.ok(
        run.stdout.includes(
          '[fail] AuthorizationPolicy default/typo: targets Server books-htp, which does not exist in namespace default',
        ),
        run.stdout,
      );
    } finally {
      await control.store.delete('AuthorizationPolicy', 'default', 'typo');
    }
  });

  it('fails (exit 1) when the control plane does not answer; bad arguments are exit 2', async () => {
    const port = await closedPort();
    const run = await check(['--api-addr', `127.0.0.1:${port}`]);
    assert.equal(run.code, 1, run.stdout);
    assert.ok(
      run.stdout.includes(`[fail] API: control plane not reachable at 127.0.0.1:${port}`),
      run.stdout,
    );
    assert.equal((await check(['-o', 'yaml'])).code, 2);
    assert.equal((await check(['--api-addr', 'no-port'])).code, 2);
  });
});
