/**
 * A TCP listener for one of the proxy's ports: bounded connection count (refusals counted),
 * every accepted socket tracked so shutdown can wait for them or destroy them, and connection
 * metrics recorded on close.
 */
import net from 'node:net';
import type { HostPort } from '../../lib/addr.js';
import { listenOn } from '../../lib/listen.js';
import type { Direction, ProxyMetrics, TcpSeries } from '../metrics/proxy-metrics.js';
import type { TlsLabels } from '../tls/tls-labels.js';

/** Accepted connections whose TLS labels wait for the stack: how each is counted once known. */
const labellers = new WeakMap<net.Socket, (t: TlsLabels) => void>();

/**
 * Counts an accepted connection (tcp_open_total, tcp_open_connections, peer="src") with the TLS
 * labels its stack found: mTLS terminated with a client identity, or plaintext. Only the first
 * call counts; a connection of a listener with fixed labels is not affected.
 */
export function labelAccepted(socket: net.Socket, t: TlsLabels): void {
  labellers.get(socket)?.(t);
}

/** Accepted connections that are counted only if labelled (their handshake completes). */
const onlyIfLabelled = new WeakSet<net.Socket>();

/**
 * A connection that turned out to be mesh TLS: counted once its handshake is done (labelAccepted),
 * not at all if the handshake fails (tcp_refused_total counts that), as Linkerd's proxy counts
 * accepted connections only after TLS detection and termination.
 */
export function countOnlyIfLabelled(socket: net.Socket): void {
  if (labellers.has(socket)) onlyIfLabelled.add(socket);
}

export interface Listener {
  readonly server: net.Server;
  /** The bound address (with the real port when 0 was asked for). */
  readonly addr: string;
  /** Stops accepting; resolves once every accepted connection has closed. */
  close(): Promise<void>;
  /** Destroys every accepted connection now. */
  destroyAll(): void;
}

/**
 * `labels`: each accepted connection's TLS labels, or, with `labelledLater`, those of one that
 * closes before its stack called labelAccepted (detection or the handshake never finished).
 */
export function listen(
  at: HostPort,
  direction: Direction,
  metrics: ProxyMetrics,
  maxConnections: number,
  onSocket: (socket: net.Socket) => void,
  labels: TlsLabels,
  labelledLater = false,
): Promise<Listener> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true }, (socket) => {
    if (sockets.size >= maxConnections) {
      metrics.refused(direction, 'max_connections');
      socket.destroy();
      return;
    }
    sockets.add(socket);
    let closed: ReturnType<TcpSeries['open']> | undefined;
    const count = (t: TlsLabels) => {
      labellers.delete(socket);
      closed = metrics.tcp(direction, 'src', '', t.tls, t.extra).open();
    };
    if (labelledLater) labellers.set(socket, count);
    else count(labels);
    socket.once('close', (hadError) => {
      sockets.delete(socket);
      if (!closed) {
        if (onlyIfLabelled.has(socket)) return void labellers.delete(socket);
        count(labels);
      }
      closed!(socket.bytesRead, socket.bytesWritten, hadError ? 'error' : undefined);
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
