import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import tls from 'node:tls';
import { scanClientHello } from './client-hello.js';

/** The first bytes a client writes to a server that never answers (its whole ClientHello). */
let server: net.Server;
let port: number;
const firstBytes: Array<(b: Buffer) => void> = [];

before(async () => {
  server = net.createServer((socket) => {
    let got = Buffer.alloc(0);
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => {
      got = Buffer.concat([got, chunk]);
      const scan = scanClientHello(got);
      if (scan.kind !== 'more') {
        firstBytes.shift()?.(got);
        socket.destroy();
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as net.AddressInfo).port;
});
after(() => server.close());

function captureNode(alpn: string[] | undefined): Promise<Buffer> {
  const got = new Promise<Buffer>((r) => firstBytes.push(r));
  const c = tls.connect({ host: '127.0.0.1', port, ALPNProtocols: alpn, rejectUnauthorized: false });
  c.on('error', () => {});
  return got;
}

function captureOpenssl(args: string[]): Promise<Buffer> {
  const got = new Promise<Buffer>((r) => firstBytes.push(r));
  const child = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, ...args], {
    stdio: ['pipe', 'ignore', 'ignore'],
  });
  return got.finally(() => child.kill('SIGKILL'));
}

/** Cuts the handshake message of a one-record ClientHello into records of `size` bytes. */
function fragment(hello: Buffer, size: number): Buffer {
  const message = hello.subarray(5);
  const records: Buffer[] = [];
  for (let at = 0; at < message.length; at += size) {
    const part = message.subarray(at, at + size);
    records.push(Buffer.from([0x16, 0x03, 0x01, part.length >> 8, part.length & 0xff]), part);
  }
  return Buffer.concat(records);
}

describe('scanClientHello', { timeout: 30_000 }, () => {
  it("reads the ALPN list of Node's and OpenSSL's real ClientHellos", async () => {
    assert.deepEqual(scanClientHello(await captureNode(['weft.mesh/1'])), {
      kind: 'hello',
      alpn: ['weft.mesh/1'],
    });
    assert.deepEqual(scanClientHello(await captureNode(['h2', 'http/1.1'])), {
      kind: 'hello',
      alpn: ['h2', 'http/1.1'],
    });
    assert.deepEqual(scanClientHello(await captureNode(undefined)), { kind: 'hello', alpn: [] });
    assert.deepEqual(scanClientHello(await captureOpenssl(['-alpn', 'x,weft.mesh/1'])), {
      kind: 'hello',
      alpn: ['x', 'weft.mesh/1'],
    });
    assert.deepEqual(scanClientHello(await captureOpenssl(['-tls1_2'])), { kind: 'hello', alpn: [] });
  });

  it('waits for every byte of the hello, and reassembles it across records', async () => {
    const hello = await captureNode(['weft.mesh/1']);
    for (let n = 0; n < hello.length; n++)
      assert.deepEqual(scanClientHello(hello.subarray(0, n)), { kind: 'more' });
    const split = fragment(hello, 50);
    assert.deepEqual(scanClientHello(split), { kind: 'hello', alpn: ['weft.mesh/1'] });
    for (let n = 0; n < split.length; n++)
      assert.deepEqual(scanClientHello(split.subarray(0, n)), { kind: 'more' });
  });

  it('calls anything else invalid: other records, other handshakes, bad lengths, truncated bodies', async () => {
    const hello = await captureNode(['weft.mesh/1']);
    const with_ = (at: number, v: number) => {
      const copy = Buffer.from(hello);
      copy[at] = v;
      return copy;
    };
    assert.deepEqual(scanClientHello(with_(0, 0x17)), { kind: 'invalid' }, 'application data record');
    assert.deepEqual(scanClientHello(with_(1, 0x02)), { kind: 'invalid' }, 'not TLS 1.x');
    assert.deepEqual(scanClientHello(with_(5, 0x02)), { kind: 'invalid' }, 'a ServerHello');
    assert.deepEqual(scanClientHello(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x00])), { kind: 'invalid' });
    assert.deepEqual(scanClientHello(Buffer.from([0x16, 0x03, 0x01, 0x48, 0x01])), { kind: 'invalid' });
    // A handshake message that claims less than its own fixed fields.
    const short = Buffer.from([0x16, 0x03, 0x01, 0x00, 0x08, 0x01, 0x00, 0x00, 0x04, 0x03, 0x03, 0x00, 0x00]);
    assert.deepEqual(scanClientHello(short), { kind: 'invalid' });
    // A mesh hello followed by a record of another type is still a whole hello.
    assert.deepEqual(scanClientHello(Buffer.concat([hello, Buffer.from([0x17, 0x03, 0x03])])), {
      kind: 'hello',
      alpn: ['weft.mesh/1'],
    });
  });
});
