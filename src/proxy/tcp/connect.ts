/**
 * The connect layer: one TCP connection to a next hop, bounded by a connect timeout, with
 * failures turned into typed errors. mTLS (the identity issue) wraps this as one more layer.
 */
import net from 'node:net';
import { ConnectError, ConnectTimeoutError } from '../../lib/errors.js';

export interface ConnectTarget {
  readonly host: string;
  readonly port: number;
  readonly addr: string;
  /**
   * The SPIFFE ID discovery promised for this next hop: the mesh connector speaks mTLS to it and
   * accepts only a peer presenting exactly this identity. Plain TCP without it.
   */
  readonly identity?: string;
}

/** Connects; resolves once the socket is connected (never before), rejects with ConnectError/ConnectTimeoutError. */
export function connectTcp(target: ConnectTarget, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: target.host, port: target.port, allowHalfOpen: true, noDelay: true });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new ConnectTimeoutError(target.addr, timeoutMs));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeListener('error', onError);
      resolve(socket);
    });
    const onError = (err: Error) => {
      clearTimeout(timer);
      reject(new ConnectError(target.addr, err));
    };
    socket.once('error', onError);
  });
}

/**
 * A socket that starts connecting now, for clients (the HTTP/1 client, http2.connect) that want one
 * synchronously; the connect timeout destroys it with ConnectTimeoutError.
 */
export function connectingSocket(target: ConnectTarget, timeoutMs: number): net.Socket {
  const socket = net.connect({ host: target.host, port: target.port, noDelay: true });
  const timer = setTimeout(() => socket.destroy(new ConnectTimeoutError(target.addr, timeoutMs)), timeoutMs);
  socket.once('connect', () => clearTimeout(timer));
  socket.once('close', () => clearTimeout(timer));
  return socket;
}

/**
 * How a stack opens connections to one kind of next hop. The proxy has two: `direct` (the app,
 * unmeshed servers: plain TCP) and `mesh` (peer inbound proxies). The identity issue's mTLS
 * replaces the mesh connector with a TLS one; nothing above this interface changes.
 */
export interface Connector {
  /** Resolves once connected; rejects with ConnectError/ConnectTimeoutError. */
  connect(target: ConnectTarget): Promise<net.Socket>;
  /** A socket that is connecting now, for clients that need one synchronously (the HTTP/1 client, http2). */
  connecting(target: ConnectTarget): net.Socket;
}

/** Plain TCP with the connect timeout. */
export function newTcpConnector(connectTimeoutMs: number): Connector {
  return {
    connect: (target) => connectTcp(target, connectTimeoutMs),
    connecting: (target) => connectingSocket(target, connectTimeoutMs),
  };
}
