/** Real TCP servers on 127.0.0.1:0: an echo (client speaks first) and a banner server (server speaks first). */
import * as net from 'node:net';
import { closeServer, type TestServer } from './app-http.js';

/** Echoes every byte; when the client half-closes, finishes echoing and closes its side. */
export function startTcpEcho(): Promise<TestServer> {
  return startTcp((socket) => socket.pipe(socket));
}

/**
 * Writes `banner` as soon as a client connects (like SMTP or MySQL, the ports a proxy must not
 * wait on for protocol detection), then echoes.
 */
export function startBannerServer(banner: string | Buffer): Promise<TestServer> {
  return startTcp((socket) => {
    socket.write(banner);
    socket.pipe(socket);
  });
}

async function startTcp(onSocket: (socket: net.Socket) => void): Promise<TestServer> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    onSocket(socket);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return { port: (server.address() as net.AddressInfo).port, close: () => closeServer(server, sockets) };
}

export interface TcpExchangeOptions {
  host?: string;
  /** Bytes to send once connected (none by default). */
  send?: string | Buffer;
  /** Resolve as soon as this many bytes arrived instead of waiting for the peer to close. */
  expectBytes?: number;
  /** Half-close after sending (default true unless `expectBytes` is set). */
  end?: boolean;
  timeoutMs?: number;
}

/**
 * Connects to `port`, sends `send`, and resolves with every byte received until the peer closes
 * (or until `expectBytes` arrived). Rejects on a socket error or after `timeoutMs` (5 s), with
 * the bytes received so far in the message.
 */
export function tcpExchange(port: number, opts: TcpExchangeOptions = {}): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let received = 0;
    const socket = net.connect({ host: opts.host ?? '127.0.0.1', port, allowHalfOpen: true });
    const done = (err: Error | null) => {
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(Buffer.concat(chunks));
    };
    const timeoutMs = opts.timeoutMs ?? 5000;
    const timer = setTimeout(
      () =>
        done(
          new Error(
            `tcpExchange: timed out after ${timeoutMs} ms with ${JSON.stringify(Buffer.concat(chunks).toString())}`,
          ),
        ),
      timeoutMs,
    );
    socket.on('connect', () => {
      if (opts.send !== undefined) socket.write(opts.send);
      if (opts.end ?? opts.expectBytes === undefined) socket.end();
    });
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      received += chunk.length;
      if (opts.expectBytes !== undefined && received >= opts.expectBytes) done(null);
    });
    socket.on('end', () => done(null));
    socket.on('error', (err) => done(err));
  });
}
