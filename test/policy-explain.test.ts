/**
 * `weft policy explain` as a user runs it: the real CLI as a child process against a real control
 * plane (in this process) whose store holds Servers, AuthorizationPolicies and a Namespace.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { RunningControlPlane } from '../src/control/control-plane.js';
import { newLogger } from '../src/lib/log.js';
import { startTestControlPlane } from './support/control-plane.js';
import { WEFT_BIN } from './support/paths.js';

const WEB = 'spiffe://weft.local/ns/shop/sa/web';
let dir: string;
let control: RunningControlPlane;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function explain(args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [WEFT_BIN, 'policy', 'explain', ...args], {
      env: { ...process.env, WEFT_API_ADDR: control.addresses.api },
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

const r = (kind: string, name: string, spec: unknown, namespace = 'shop') => ({
  apiVersion: 'weft.io/v1alpha1',
  kind,
  metadata: { name, namespace },
  spec,
});

describe('weft policy explain', () => {
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'weft-policy-explain-'));
    control = await startTestControlPlane({ stateDir: dir, log: newLogger('warn', {}, () => {}) });
    for (const res of [
      r('Service', 'books', { ports: [{ port: 7002 }] }),
      r('Workload', 'books-0', { service: 'books', address: '127.0.0.1', port: 4143 }),
      r('Workload', 'web-0', { service: 'web', address: '127.0.0.1', port: 4144, identity: WEB }),
      r('Server', 'books-http', { selector: { service: 'books' }, port: 7002, proxyProtocol: 'HTTP/1' }),
      r('Server', 'books-db', { selector: { service: 'books' }, port: 5432, proxyProtocol: 'opaque' }),
      r('AuthorizationPolicy', 'web-reads', {
        targetRef: { kind: 'Server', name: 'books-http' },
        from: [{ identities: [WEB] }],
        http: [{ path: { prefix: '/books' }, methods: ['GET'] }],
      }),
      r('Namespace', 'shop', { defaultInboundPolicy: 'deny' }, 'default'),
    ])
      await control.store.apply(res);
  });
  after(async () => {
    await control?.shutdown();
    await rm(dir, { recursive: true, force: true });
  });

  it('says which rule allows a call (exit 0)', async () => {
    const run = await explain([
      '--from',
      'web-0',
      '-n',
      'shop',
      '--to',
      'books-0:7002',
      '--path',
      '/books/1',
    ]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(
      run.stdout,
      /^ALLOWED: GET \/books\/1 to books-0:7002\n {2}by AuthorizationPolicy web-reads rule 0 on Server books-http\n/,
    );
  });

  it('says why a call is denied: the server, each authorization and why it did not match (exit 3)', async () => {
    const post = await explain([
      '--from',
      WEB,
      '-n',
      'shop',
      '--to',
      'books:7002',
      '--method',
      'POST',
      '--path',
      '/books',
    ]);
    assert.equal(post.code, 3, post.stderr);
    assert.match(
      post.stdout,
      /^DENIED: POST \/books to books:7002\n {2}server books-http: Server books-http has no authorization/,
    );
    assert.match(post.stdout, /AuthorizationPolicy web-reads: no match: method POST is not one of GET/);
    const plain = await explain([
      '--from',
      '10.1.2.3',
      '-n',
      'shop',
      '--to',
      'books-0:7002',
      '--path',
      '/books',
    ]);
    assert.equal(plain.code, 3);
    assert.match(plain.stdout, /rule 0: the client has no verified identity/);
    const tcp = await explain(['--from', WEB, '-n', 'shop', '--to', 'books-0:5432']);
    assert.equal(tcp.code, 3);
    assert.match(tcp.stdout, /^DENIED: TCP connection to books-0:5432/);
    const noServer = await explain(['--from', WEB, '-n', 'shop', '--to', 'books-0:9999']);
    assert.equal(noServer.code, 3);
    assert.match(noServer.stdout, /port 9999 has no Server: the namespace shop default deny applies/);
  });

  it('prints JSON with -o json', async () => {
    const run = await explain([
      '--from',
      WEB,
      '-n',
      'shop',
      '--to',
      'books-0:7002',
      '--path',
      '/books',
      '-o',
      'json',
    ]);
    assert.equal(run.code, 0);
    const out = JSON.parse(run.stdout) as {
      decision: { verdict: string; authorization: string };
      target: unknown;
    };
    assert.deepEqual(out.decision.verdict, 'allow');
    assert.deepEqual(out.target, { namespace: 'shop', service: 'books', workload: 'books-0' });
  });

  it('exits 1 for an unknown target or client and 2 for a malformed --to', async () => {
    const target = await explain(['--from', WEB, '-n', 'shop', '--to', 'nope:7002']);
    assert.equal(target.code, 1);
    assert.match(target.stderr, /Workload or Service shop\/nope not found/);
    const from = await explain(['--from', 'ghost', '-n', 'shop', '--to', 'books:7002']);
    assert.equal(from.code, 1);
    assert.match(from.stderr, /Workload shop\/ghost not found/);
    const bad = await explain(['--from', WEB, '--to', 'books']);
    assert.equal(bad.code, 2);
  });
});
