/**
 * A client that starts a mesh TLS handshake and then stalls (sends a real ClientHello with ALPN
 * weft.mesh/1, reads the server's flight, never sends its Finished) must not hold an inbound
 * connection forever: Node's handshakeTimeout only reports the timeout, and the proxy has to close
 * the socket itself. The connection is closed after the handshake timeout (10 s), counted as a
 * refused handshake, and nothing reaches the app.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import tls from 'node:tls';
import { parseHostPort } from '../src/lib/addr.js';
import type { HttpApp } from './support/apps.js';
import { eventually } from './support/eventually.js';
import { type MeshedInbound, startMeshedInbound } from './support/meshed-proxy.js';
import { sampleSum } from './support/prom-text.js';
import type { ProxyProcess } from './support/proxy-process.js';

let mesh: MeshedInbound | undefined;
let httpApp: HttpApp;
let inBooks: ProxyProcess | undefined;

before(async () => {
  mesh = await startMeshedInbound('weft-mtls-stall-');
  ({ httpApp, inBooks } = mesh);
});

after(async () => {
  await mesh?.close();
});

/** The first flight of a real Node TLS 1.3 client offering weft.mesh/1: its ClientHello. */
async function captureClientHello(): Promise<Buffer> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  try {
    const hello = new Promise<Buffer>((resolve) => server.once('connection', (s) => s.once('data', resolve)));
    const client = tls.connect({
      host: '127.0.0.1',
      port,
      ALPNProtocols: ['weft.mesh/1'],
      rejectUnauthorized: false,
    });
    client.on('error', () => {});
    const bytes = await hello;
    client.destroy();
    return bytes;
  } finally {
    server.close();
  }
}

describe('a mesh TLS handshake that stalls', { timeout: 60_000 }, () => {
  it('is closed by the proxy after the handshake timeout, counted as refused, and reaches nobody', async () => {
    const hello = await captureClientHello();
    assert.equal(hello[0], 0x16, 'a TLS handshake record');
    const refused = async () =>
      sampleSum(await inBooks!.metrics(), 'tcp_refused_total', { reason: 'tls_handshake' });
    const refusedBefore = await refused();
    const requestsBefore = httpApp.requestCount();

    const { host, port } = parseHostPort(inBooks!.inbound!);
    const socket = net.connect({ host, port });
    socket.on('error', () => {});
    let received = 0;
    socket.on('data', (chunk: Buffer) => (received += chunk.length));
    const t0 = Date.now();
    socket.write(hello);
    await new Promise<void>((resolve) => socket.once('close', () => resolve()));
    const elapsedMs = Date.now() - t0;

    assert.ok(
      received > 0,
      "the server answered the ClientHello: the handshake stalled on the client's side",
    );
    // Closed by the timeout, not refused at once (which would mean the hello itself was refused).
    assert.ok(elapsedMs >= 8_000, `closed after ${elapsedMs} ms`);
    assert.equal(httpApp.requestCount(), requestsBefore);
    await eventually(async () => assert.equal(await refused(), refusedBefore + 1));
  });
});
