/**
 * A TCP listener for one of the proxy's ports: bounded connection count (refusals counted),
 * every accepted socket tracked so shutdown can wait for them or destroy them, and connection
 * metrics recorded on close.
 */
import net from 'node:net';
import type { HostPort } from '../../lib/addr.js';
import { listenOn } from '../../lib/listen.js';
import type { Direction, ProxyMetrics } from '../metrics/proxy-metrics.js';

export interface Listener {
  readonly server: net.Server;
  /** The bound address (with the real port when 0 was asked for). */
  readonly addr: string;
  /** Stops accepting; resolves once every accepted connection has closed. */
  close(): Promise<void>;
  /** Destroys every accepted connection now. */
  destroyAll(): void;
}

export function listen(
  at: HostPort,
  direction: Direction,
  metrics: ProxyMetrics,
  maxConnections: number,
  onSocket: (socket: net.Socket) => void,
): Promise<Listener> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true }, (socket) => {
    if (sockets.size >= maxConnections) {
      metrics.refused(direction, 'max_connections');
      socket.destroy();
      return;
    }
    sockets.add(socket);
    const closed = metrics.tcp(direction, 'src', '', 'false').open();
    socket.once('close', (hadError) => {
      sockets.delete(socket);
      closed(socket.bytesRead, socket.bytesWritten, hadError ? 'error' : undefined);
    });
    socket.on('error', () => {});
    onSocket(socket);
  });
  return listenOn(server, at).then((addr) => ({
    server,
    addr,
    close: () =>
      new Promise<void>((done) => {
        server.close(() => done());
      }),
    destroyAll: () => {
      for (const s of sockets) s.destroy();
    },
  }));
}
