/**
 * The mesh connector and the inbound TLS terminator on real sockets, with certificates from the
 * test CA: the SPIFFE ID check, refusals, and certificate swaps (new connections get the newest
 * certificate, open ones are not dropped).
 */
import assert from 'node:assert/strict';
import type { X509Certificate } from 'node:crypto';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import type tls from 'node:tls';
import { newTestCa, type TestCa } from '../../../test/support/test-ca.js';
import { newLogger } from '../../lib/log.js';
import type { StaticIdentity } from '../identity/static-identity.js';
import { ProxyMetrics } from '../metrics/proxy-metrics.js';
import { detectProtocol } from '../tcp/detect.js';
import { newMeshConnector } from './mesh-connector.js';
import { newMeshTlsServer } from './mesh-tls-server.js';
import type { PeerInfo } from './peer-info.js';

const BOOKS = 'spiffe://weft.local/ns/default/sa/books';
const AUTHORS = 'spiffe://weft.local/ns/default/sa/authors';
const WEB = 'spiffe://weft.local/ns/default/sa/web';

let ca: TestCa;
let serverIdentity: StaticIdentity;
let clientIdentity: StaticIdentity;
let listener: net.Server;
let addr: { host: string; port: number; addr: string };
const metrics = new ProxyMetrics();
/** What the server saw of each served connection, in order. */
const served: { peer: PeerInfo; clientCert: string; bytes: number }[] = [];

before(async () => {
  ca = await newTestCa();
  serverIdentity = await ca.identity(BOOKS);
  clientIdentity = await ca.identity(WEB);
  const tlsServer = newMeshTlsServer(
    serverIdentity,
    metrics,
    newLogger('error', {}, () => {}),
    (socket, peer) => {
      const record = { peer, clientCert: fingerprintOf(socket.getPeerX509Certificate()), bytes: 0 };
      served.push(record);
      socket.on('data', (c: Buffer) => (record.bytes += c.length));
      socket.pipe(socket); // echo
    },
  );
  // Detection peeks at the ClientHello and unshifts it: the terminator must still see all of it.
  listener = net.createServer({ pauseOnConnect: true, allowHalfOpen: true }, (raw) => {
    raw.on('error', () => {});
    void detectProtocol(raw, 2000, true).then((d) =>
      d.kind === 'mesh-tls' ? tlsServer.terminate(raw) : raw.destroy(),
    );
  });
  await new Promise<void>((r) => listener.listen(0, '127.0.0.1', r));
  const port = (listener.address() as net.AddressInfo).port;
  addr = { host: '127.0.0.1', port, addr: `127.0.0.1:${port}` };
});

after(() => listener.close());

function fingerprintOf(cert: X509Certificate | undefined): string {
  return cert?.fingerprint256 ?? '';
}

function currentLeaf(identity: StaticIdentity): string {
  return identity.certificate()!.fingerprint;
}

/** Writes `text` and resolves with the echo. */
function roundTrip(socket: net.Socket, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    const onData = (c: Buffer) => {
      got += c.toString();
      if (got.length >= text.length) {
        socket.off('data', onData);
        resolve(got);
      }
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.write(text);
  });
}

describe('mesh TLS', { timeout: 30_000 }, () => {
  it('connects to the promised identity over TLS 1.3 with ALPN weft.mesh/1; the server knows the client', async () => {
    const connector = newMeshConnector(clientIdentity, 3000);
    const socket = (await connector.connect({ ...addr, identity: BOOKS })) as tls.TLSSocket;
    try {
      assert.equal(socket.getProtocol(), 'TLSv1.3');
      assert.equal(socket.alpnProtocol, 'weft.mesh/1');
      assert.equal(await roundTrip(socket, 'ping'), 'ping');
      assert.deepEqual(served.at(-1)?.peer, { tls: true, clientId: WEB, remoteAddr: '127.0.0.1' });
    } finally {
      socket.destroy();
    }
  });

  it('refuses a peer presenting another identity before a byte is sent to it', async () => {
    const count = served.length;
    const connector = newMeshConnector(clientIdentity, 3000);
    await assert.rejects(connector.connect({ ...addr, identity: AUTHORS }), {
      code: 'WEFT_ERR_PEER_IDENTITY',
      httpStatus: 502,
      message: `${addr.addr} presented ${BOOKS}, expected ${AUTHORS}`,
    });
    // The same through a socket handed out at once (HTTP/1 pool, HTTP/2), with a write queued.
    const socket = connector.connecting({ ...addr, identity: AUTHORS });
    socket.write('must not arrive');
    const err = await new Promise<Error>((r) => socket.once('error', r));
    assert.equal((err as { code?: string }).code, 'WEFT_ERR_PEER_IDENTITY');
    await new Promise((r) => setTimeout(r, 100)); // let a wrongly sent write land, if any
    for (const s of served.slice(count)) assert.equal(s.bytes, 0);
  });

  it('refuses a server whose chain does not end at a trust anchor', async () => {
    const stranger = await (await newTestCa('Other')).identity(BOOKS);
    const other = newMeshTlsServer(
      stranger,
      metrics,
      newLogger('error', {}, () => {}),
      (s) => s.destroy(),
    );
    const l = net.createServer({ pauseOnConnect: true }, (raw) => other.terminate(raw));
    await new Promise<void>((r) => l.listen(0, '127.0.0.1', r));
    try {
      const port = (l.address() as net.AddressInfo).port;
      await assert.rejects(
        newMeshConnector(clientIdentity, 3000).connect({
          host: '127.0.0.1',
          port,
          addr: `127.0.0.1:${port}`,
          identity: BOOKS,
        }),
        { code: 'WEFT_ERR_MESH_TLS', httpStatus: 502 },
      );
    } finally {
      l.close();
    }
  });

  it('refuses a client whose chain does not end at a trust anchor, and counts it', async () => {
    const refused = () =>
      metrics.registry.render().match(/tcp_refused_total\{[^}]*tls_handshake[^}]*\} (\d+)/)?.[1];
    const before = Number(refused() ?? 0);
    const stranger = await (await newTestCa('Other')).identity(WEB);
    const socket = newMeshConnector(stranger, 3000).connecting({ ...addr, identity: BOOKS });
    socket.on('error', () => {});
    // Under TLS 1.3 the client's handshake completes before the server has checked it.
    await new Promise((r) => socket.once('close', r));
    assert.equal(Number(refused()), before + 1);
  });

  it('uses the newest certificates for new connections and keeps open ones', async () => {
    const connector = newMeshConnector(clientIdentity, 3000);
    const open = (await connector.connect({ ...addr, identity: BOOKS })) as tls.TLSSocket;
    try {
      const oldServerLeaf = currentLeaf(serverIdentity);
      const oldClientLeaf = currentLeaf(clientIdentity);
      assert.equal(fingerprintHex(open.getPeerX509Certificate()), oldServerLeaf);

      const nextServer = await ca.issue(BOOKS);
      const nextClient = await ca.issue(WEB);
      serverIdentity.update(nextServer.keyPem, nextServer.chainPem);
      clientIdentity.update(nextClient.keyPem, nextClient.chainPem);

      const fresh = (await connector.connect({ ...addr, identity: BOOKS })) as tls.TLSSocket;
      try {
        assert.equal(await roundTrip(fresh, 'new'), 'new');
        assert.equal(fingerprintHex(fresh.getPeerX509Certificate()), currentLeaf(serverIdentity));
        assert.notEqual(currentLeaf(serverIdentity), oldServerLeaf);
        assert.equal(served.at(-1)?.clientCert, colonHex(currentLeaf(clientIdentity)));
        assert.notEqual(currentLeaf(clientIdentity), oldClientLeaf);
      } finally {
        fresh.destroy();
      }
      // The connection opened before the swap still carries bytes both ways.
      assert.equal(await roundTrip(open, 'still here'), 'still here');
    } finally {
      open.destroy();
    }
  });
});

/** X509Certificate.fingerprint256 as lower-case hex without colons (LeafInfo's form). */
function fingerprintHex(cert: X509Certificate | undefined): string {
  return (cert?.fingerprint256 ?? '').replaceAll(':', '').toLowerCase();
}

function colonHex(hex: string): string {
  return hex.toUpperCase().match(/../g)!.join(':');
}
