/**
 * Policy with `weft run` as a user runs it: two workloads started by the real CLI get identities
 * and sidecars, and the sidecars get their inbound policy from the control plane by identity
 * (nobody told them their Service). With namespace `default` set to `deny` and books open only
 * to web's identity: web's calls through the mesh get 200, a plaintext client of books' inbound
 * port gets 403, and `weft policy explain` says the same for both.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import type { RunningControlPlane } from '../src/control/control-plane.js';
import { newLogger } from '../src/lib/log.js';
import { startTestControlPlane } from './support/control-plane.js';
import { curl, curlWriteOut, parseCurlWrite } from './support/curl.js';
import { eventually } from './support/eventually.js';
import { execExitCode } from './support/exec-exit-code.js';
import { fixturePath, WEFT_BIN } from './support/paths.js';
import { httpFrom } from './support/policy-clients.js';

const APP = fixturePath('run-app.mjs');
const WEB = 'spiffe://weft.local/ns/default/sa/web';

let dir: string;
let control: RunningControlPlane;
const runs: ChildProcess[] = [];

type Registered = { workload: string; appPort: number; inbound: string; outbound: string; admin: string };

/** `weft run --service <service> -- node run-app.mjs`; resolves with its 'workload registered' line. */
async function weftRun(service: string): Promise<Registered> {
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
      service,
      '--',
      'node',
      APP,
      service,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  runs.push(child);
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
      return e as unknown as Registered;
    },
    { timeoutMs: 20_000 },
  );
  await eventually(async () => {
    const body = (await (await fetch(`http://${reg.admin}/identity`)).json()) as { ready?: boolean };
    assert.equal(body.ready, true);
  });
  return reg;
}

function explain(args: string[]): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [WEFT_BIN, 'policy', 'explain', ...args],
      { env: { ...process.env, WEFT_API_ADDR: control.addresses.api }, timeout: 20_000 },
      (err, stdout, stderr) => resolve({ code: execExitCode(err), stdout: stdout + stderr }),
    );
  });
}

const res = (kind: string, name: string, spec: unknown) => ({
  apiVersion: 'weft.io/v1alpha1',
  kind,
  metadata: { name, namespace: 'default' },
  spec,
});

describe('policy for `weft run` workloads', () => {
  let books: Registered;
  let web: Registered;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'weft-policy-run-'));
    control = await startTestControlPlane({ stateDir: dir, log: newLogger('error', {}, () => {}) });
    await control.store.apply({
      apiVersion: 'weft.io/v1alpha1',
      kind: 'Namespace',
      metadata: { name: 'default' },
      spec: { defaultInboundPolicy: 'deny' },
    });
    [books, web] = await Promise.all([weftRun('books'), weftRun('web')]);
    await control.store.apply(
      res('Server', 'books-http', {
        selector: { service: 'books' },
        port: books.appPort,
        proxyProtocol: 'HTTP/1',
      }),
    );
    await control.store.apply(
      res('AuthorizationPolicy', 'books-from-web', {
        targetRef: { kind: 'Server', name: 'books-http' },
        from: [{ identities: [WEB] }],
      }),
    );
  });

  after(async () => {
    for (const r of runs) if (r.exitCode === null && r.signalCode === null) r.kill('SIGTERM');
    await Promise.all(
      runs.map((r) =>
        r.exitCode === null && r.signalCode === null ? new Promise((ok) => r.once('exit', ok)) : null,
      ),
    );
    await control?.shutdown();
    await rm(dir, { recursive: true, force: true });
  });

  it("lets web's identity through the mesh and refuses a plaintext client, as explain says", async () => {
    const viaMesh = async () => {
      const r = await curl([
        '--max-time',
        '10',
        '-x',
        `http://${web.outbound}`,
        '-o',
        '/dev/null',
        ...curlWriteOut(['http_code']),
        `http://books:${books.appPort}/`,
      ]);
      return parseCurlWrite(r.stdout, ['http_code']).values.http_code;
    };
    // One fresh-clone CI run on this 2-core machine needed more than 10 s here, with one attempt
    // still pending (every other run: under 1 s; not reproduced in 18 local runs, 8 of them with
    // both cores busy). The cause is not known: perhaps the deny-by-default window before the
    // Server and its policy reach books' proxy. Hence the same margin as registration.
    await eventually(async () => assert.equal(await viaMesh(), '200'), { timeoutMs: 30_000 });
    // The Server and its policy arrived: a client without an identity is refused.
    await eventually(async () => {
      const direct = await httpFrom('127.0.0.1', books.inbound, '/');
      assert.equal(direct.status, 403);
      assert.equal(direct.proxyError, 'unauthorized: no authorization for this client on server books-http');
    });
    assert.equal(await viaMesh(), '200');

    const allowed = await explain(['--from', web.workload, '--to', `${books.workload}:${books.appPort}`]);
    assert.equal(allowed.code, 0, allowed.stdout);
    assert.match(allowed.stdout, /by AuthorizationPolicy books-from-web rule 0 on Server books-http/);
    const denied = await explain(['--from', '127.0.0.1', '--to', `${books.workload}:${books.appPort}`]);
    assert.equal(denied.code, 3, denied.stdout);
  });
});
