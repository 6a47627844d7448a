/**
 * The probes of `weft check` against real local servers (port 0): the wrong kind of server, a
 * silent one, a TLS server with the wrong identity or another CA, a proxy admin that answers oddly.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import tls from 'node:tls';
import { newTestCa, type TestCa } from '../../test/support/test-ca.js';
import type { HostPort } from '../lib/addr.js';
import { probeGrpc, probeIdentityTls, probeProxyIdentity } from './check-probes.js';

const IDENTITY = 'spiffe://weft.local/ns/weft/sa/identity';
const servers: net.Server[] = [];

const sockets = new Set<net.Socket>();

async function listen(server: net.Server): Promise<HostPort> {
  servers.push(server);
  // Every accepted socket, so teardown can end connections a server would wait for forever.
  server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('secureConnection', (s: net.Socket) => sockets.add(s));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { host: '127.0.0.1', port: (server.address() as net.AddressInfo).port };
}

/** A TCP server that accepts and never says a word. */
function silent(): net.Server {
  return net.createServer(() => {});
}

after(async () => {
  for (const s of sockets) s.destroy();
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
});

describe('weft check probes: gRPC', () => {
  it('an HTTP/1 server is not gRPC', async () => {
    const addr = await listen(http.createServer((_req, res) => res.end('hi')));
    const r = await probeGrpc(addr, 2_000);
    assert.equal(r.ok, false);
  });

  it('an h2c server that answers without grpc-status is not gRPC', async () => {
    const addr = await listen(http2.createServer((_req, res) => res.end('hi')));
    const r = await probeGrpc(addr, 2_000);
    assert.deepEqual(r, { ok: false, detail: 'answered without a grpc-status: not a gRPC server' });
  });

  it('a silent server fails within the deadline', async () => {
    const addr = await listen(silent());
    const started = Date.now();
    const r = await probeGrpc(addr, 300);
    assert.deepEqual(r, { ok: false, detail: 'no answer within 300 ms' });
    assert.ok(Date.now() - started < 5_000);
  });
});

describe('weft check probes: Identity TLS', () => {
  let ca: TestCa;
  let other: TestCa;
  before(async () => {
    ca = await newTestCa();
    other = await newTestCa('Other');
  });
  const tlsServer = async (leaf: { keyPem: string; chainPem: readonly string[] }) =>
    listen(
      tls.createServer({ key: leaf.keyPem, cert: leaf.chainPem.join(''), minVersion: 'TLSv1.3' }, (s) =>
        s.on('error', () => {}),
      ),
    );

  it('verifies the chain and the identity, and returns the issuer presented', async () => {
    const addr = await tlsServer(await ca.issue(IDENTITY));
    const r = await probeIdentityTls(addr, ca.anchorsPem, IDENTITY);
    assert.equal(r.ok, true);
    assert.ok(r.ok && r.issuerPem);
    assert.equal(
      new X509Certificate(r.issuerPem as string).fingerprint256,
      new X509Certificate(ca.intermediate.certPem).fingerprint256,
    );
  });

  it('refuses another identity, naming what was presented', async () => {
    const addr = await tlsServer(await ca.issue('spiffe://weft.local/ns/default/sa/books'));
    const r = await probeIdentityTls(addr, ca.anchorsPem, IDENTITY);
    assert.equal(r.ok, false);
    assert.match(!r.ok ? r.detail : '', /sa\/books.*expected spiffe:\/\/weft\.local\/ns\/weft\/sa\/identity/);
  });

  it('refuses a chain to another CA', async () => {
    const addr = await tlsServer(await other.issue(IDENTITY));
    const r = await probeIdentityTls(addr, ca.anchorsPem, IDENTITY);
    assert.equal(r.ok, false);
  });
});

describe('weft check probes: proxy admin /identity', () => {
  const at = (a: HostPort) => `${a.host}:${a.port}`;

  it('tells "no identity" from an odd answer, a dead port and a silent one', async () => {
    const noId = await listen(
      http.createServer((_req, res) => res.writeHead(404).end('this proxy has no identity\n')),
    );
    assert.deepEqual(await probeProxyIdentity(at(noId)), { kind: 'no-identity', adminAddress: at(noId) });

    const odd = await listen(http.createServer((_req, res) => res.end('{"hello": 1}')));
    assert.deepEqual(await probeProxyIdentity(at(odd)), {
      kind: 'bad-answer',
      adminAddress: at(odd),
      detail: 'not an identity status',
    });

    const closed = net.createServer();
    const dead = at(await listen(closed));
    await new Promise((resolve) => closed.close(resolve));
    servers.splice(servers.indexOf(closed), 1);
    assert.deepEqual(await probeProxyIdentity(dead), {
      kind: 'unreachable',
      adminAddress: dead,
      detail: 'ECONNREFUSED',
    });

    const quiet = await listen(silent());
    assert.deepEqual(await probeProxyIdentity(at(quiet), 300), {
      kind: 'unreachable',
      adminAddress: at(quiet),
      detail: 'no answer within 300 ms',
    });
  });
});
