import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import tls from 'node:tls';
import { newTestCa, selfSignedLeaf, type TestCa } from '../../../test/support/test-ca.js';
import { IdentityMaterialError, IdentityNotReadyError } from './identity-errors.js';
import { uriSans } from './identity-state.js';
import type { LocalIdentity } from './local-identity.js';
import { StaticIdentity, staticIdentity } from './static-identity.js';

const BOOKS = 'spiffe://weft.local/ns/default/sa/books';
const AUTHORS = 'spiffe://weft.local/ns/default/sa/authors';

interface Accepted {
  readonly peerId: string;
  readonly protocol: string | null;
}

/** A TLS server on loopback that requires a client certificate chaining to its identity's anchors. */
async function mtlsServer(identity: LocalIdentity) {
  const accepted: Accepted[] = [];
  const refused: Error[] = [];
  const server = tls.createServer(
    {
      requestCert: true,
      rejectUnauthorized: true,
      // Version bounds come from the server's own options, not from a context SNICallback swaps in.
      minVersion: 'TLSv1.3',
      // A fresh context per handshake, so changes apply to new connections.
      SNICallback: (_name, cb) => cb(null, identity.serverContext()),
    },
    (socket) => {
      const peer = socket.getPeerX509Certificate();
      accepted.push({ peerId: peer ? (uriSans(peer)[0] ?? '') : '', protocol: socket.getProtocol() });
      socket.end('hello');
    },
  );
  server.on('tlsClientError', (err) => refused.push(err));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as AddressInfo).port, accepted, refused };
}

/** Connects with `identity` expecting the server to be `serverId`; resolves once the server greeted. */
function dial(port: number, identity: LocalIdentity, serverId: string, extra: tls.ConnectionOptions = {}) {
  return new Promise<{ data: string; serverCert: X509Certificate | undefined }>((resolve, reject) => {
    const socket = tls.connect({
      host: '127.0.0.1',
      port,
      servername: 'mesh.weft.invalid',
      secureContext: identity.clientContext(),
      rejectUnauthorized: true,
      checkServerIdentity: (_host, cert) => {
        const got = new X509Certificate(cert.raw);
        return uriSans(got)[0] === serverId ? undefined : new Error(`server is ${uriSans(got)}`);
      },
      ...extra,
    });
    let data = '';
    let serverCert: X509Certificate | undefined;
    socket.on('secureConnect', () => (serverCert = socket.getPeerX509Certificate()));
    socket.on('data', (d) => (data += d));
    socket.on('error', reject);
    // Under TLS 1.3 a refused client first looks connected, then is closed: only the server's
    // greeting proves acceptance.
    socket.on('close', () =>
      data === 'hello'
        ? resolve({ data, serverCert })
        : reject(new Error('closed before the server greeted')),
    );
  });
}

describe('staticIdentity', () => {
  let ca: TestCa;
  before(async () => {
    ca = await newTestCa();
  });

  it('its contexts complete a TLS 1.3 mutual handshake; each side sees the other SPIFFE ID', async () => {
    const server = await mtlsServer(await ca.identity(BOOKS));
    after(() => server.server.close());
    const client = await ca.identity(AUTHORS);
    const got = await dial(server.port, client, BOOKS);
    assert.equal(got.data, 'hello');
    assert.deepEqual(server.accepted, [{ peerId: AUTHORS, protocol: 'TLSv1.3' }]);
    assert.ok(got.serverCert && uriSans(got.serverCert)[0] === BOOKS);
  });

  it('the client refuses a server whose identity is not the expected one', async () => {
    const server = await mtlsServer(await ca.identity(BOOKS));
    after(() => server.server.close());
    await assert.rejects(dial(server.port, await ca.identity(AUTHORS), AUTHORS), /server is/);
  });

  it('a server refuses clients from another CA, self-signed, and without a certificate', async () => {
    const server = await mtlsServer(await ca.identity(BOOKS));
    after(() => server.server.close());
    const other = await newTestCa('Other');
    const foreign = await other.issue(AUTHORS);
    const selfie = await selfSignedLeaf(AUTHORS);
    const clients = [
      staticIdentity(AUTHORS, foreign.keyPem, foreign.chainPem, ca.anchorsPem),
      staticIdentity(AUTHORS, selfie.keyPem, selfie.chainPem, ca.anchorsPem),
    ];
    for (const c of clients) await assert.rejects(dial(server.port, c, BOOKS));
    // No client certificate at all: a bare context trusting the CA.
    const bare = tls.createSecureContext({ ca: [...ca.anchorsPem], minVersion: 'TLSv1.3' });
    await assert.rejects(dial(server.port, clients[0] as LocalIdentity, BOOKS, { secureContext: bare }));
    assert.equal(server.accepted.length, 0);
    assert.equal(server.refused.length, 3);
  });

  it('refuses TLS 1.2 clients', async () => {
    const server = await mtlsServer(await ca.identity(BOOKS));
    after(() => server.server.close());
    const leaf = await ca.issue(AUTHORS);
    const tls12 = tls.createSecureContext({
      key: leaf.keyPem,
      cert: leaf.chainPem.join(''),
      ca: [...ca.anchorsPem],
      maxVersion: 'TLSv1.2',
    });
    await assert.rejects(dial(server.port, await ca.identity(AUTHORS), BOOKS, { secureContext: tls12 }));
    assert.equal(server.accepted.length, 0);
  });

  it('update swaps the leaf for new connections and tells listeners; anchors can be replaced', async () => {
    const books = await ca.identity(BOOKS);
    const server = await mtlsServer(books);
    after(() => server.server.close());
    const client = await ca.identity(AUTHORS);
    const first = await dial(server.port, client, BOOKS);
    let changes = 0;
    books.onChange(() => changes++);

    const next = await ca.issue(BOOKS);
    books.update(next.keyPem, next.chainPem);
    assert.equal(changes, 1);
    const second = await dial(server.port, client, BOOKS);
    assert.notEqual(first.serverCert?.fingerprint256, second.serverCert?.fingerprint256);
    assert.equal(second.serverCert?.fingerprint256, new X509Certificate(next.certPem).fingerprint256);

    // A client from a second CA is refused until the server trusts both anchors.
    const other = await newTestCa('Second');
    const otherLeaf = await other.issue(AUTHORS);
    const otherClient = staticIdentity(AUTHORS, otherLeaf.keyPem, otherLeaf.chainPem, ca.anchorsPem);
    await assert.rejects(dial(server.port, otherClient, BOOKS));
    books.setAnchors([...ca.anchorsPem, ...other.anchorsPem]);
    assert.equal(changes, 2);
    assert.equal(books.trustAnchors().length, 2);
    assert.equal((await dial(server.port, otherClient, BOOKS)).data, 'hello');
  });

  it('is not ready and throws IdentityNotReadyError before a certificate; whenReady resolves on update', async () => {
    const id = new StaticIdentity(BOOKS);
    assert.equal(id.ready(), false);
    assert.equal(id.certificate(), null);
    assert.throws(() => id.serverContext(), IdentityNotReadyError);
    const leaf = await ca.issue(BOOKS);
    id.update(leaf.keyPem, leaf.chainPem, leaf.anchorsPem);
    await id.whenReady();
    assert.equal(id.ready(), true);
    const info = id.certificate();
    assert.ok(info && info.notAfterMs === Date.parse(new X509Certificate(leaf.certPem).validTo));
  });

  it('rejects a key that does not match the leaf, and a leaf for another identity', async () => {
    const books = await ca.issue(BOOKS);
    const authors = await ca.issue(AUTHORS);
    assert.throws(
      () => staticIdentity(BOOKS, authors.keyPem, books.chainPem, ca.anchorsPem),
      IdentityMaterialError,
    );
    assert.throws(
      () => staticIdentity(BOOKS, authors.keyPem, authors.chainPem, ca.anchorsPem),
      IdentityMaterialError,
    );
  });
});
