/**
 * Inbound termination of mesh TLS (docs/identity.md): a connection whose ClientHello offered
 * ALPN `weft.mesh/1` is answered with this workload's current certificate, TLS 1.3 only (the
 * identity's contexts allow nothing else), and must present a client certificate that chains to
 * a trust anchor and names exactly one SPIFFE ID. Anything else is refused, counted and closed.
 *
 * Node's tls.Server does the handshake and the client-chain check (it verifies after the
 * handshake and destroys unauthorized sockets, so a refused TLS 1.3 client first looks connected,
 * then is closed before a byte reaches the app). The server never listens: accepted sockets are
 * handed to it, each with the server context current at that moment, so a renewed certificate
 * or trust bundle applies to the next connection while open ones keep theirs.
 */
import type net from 'node:net';
import tls from 'node:tls';
import type { Logger } from '../../lib/log.js';
import { uriSans } from '../identity/identity-state.js';
import type { LocalIdentity } from '../identity/local-identity.js';
import type { ProxyMetrics } from '../metrics/proxy-metrics.js';
import { countOnlyIfLabelled } from '../tcp/listener.js';
import { MESH_ALPN } from './mesh-alpn.js';
import type { PeerInfo } from './peer-info.js';

export interface MeshTlsServer {
  /**
   * Takes over `socket` (paused, with the ClientHello still unread in it). Calls the `onSecure`
   * given at construction with the decrypted stream, the verified peer and `socket` once the
   * handshake completed; otherwise closes the socket and counts `tcp_refused_total{reason="tls_handshake"}`
   * (and not as an accepted connection: countOnlyIfLabelled).
   */
  terminate(socket: net.Socket): void;
}

/** Long enough for a loaded peer, short enough that a stalled handshake does not hold a slot. */
const HANDSHAKE_TIMEOUT_MS = 10_000;

export function newMeshTlsServer(
  identity: LocalIdentity,
  metrics: ProxyMetrics,
  log: Logger,
  onSecure: (socket: tls.TLSSocket, peer: PeerInfo, raw: net.Socket | undefined) => void,
): MeshTlsServer {
  const server = tls.createServer({
    requestCert: true,
    rejectUnauthorized: true,
    ALPNProtocols: [MESH_ALPN],
    handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
  });
  // Sockets handed over and not yet served, by remote address: how 'secureConnection' (which
  // only gives the TLS socket) marks its TCP socket served, and the rest are counted as refused.
  const pending = new Map<string, net.Socket>();
  const served = new WeakSet<net.Socket>();

  server.on('secureConnection', (socket: tls.TLSSocket) => {
    const raw = pending.get(connectionKey(socket));
    if (raw) served.add(raw);
    const ids = peerIds(socket);
    if (ids.length !== 1) {
      log.debug('mesh client certificate names no single identity', { remote: socket.remoteAddress, ids });
      if (raw) served.delete(raw);
      socket.destroy();
      return;
    }
    socket.on('error', () => {});
    onSecure(socket, { tls: true, clientId: ids[0], remoteAddr: socket.remoteAddress ?? '' }, raw);
  });
  server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: tls.TLSSocket) => {
    log.debug('mesh tls handshake refused', {
      remote: socket.remoteAddress,
      code: err.code,
      error: err.message,
    });
    // Node only reports a handshake that failed or timed out (handshakeTimeout closes nothing):
    // without this a client that stalls mid-handshake would hold a connection slot forever.
    socket.destroy();
  });

  return {
    terminate(socket) {
      // Counted as an accepted connection once the handshake completes (onSecure's caller labels
      // it), never if it fails: tcp_refused_total has those.
      countOnlyIfLabelled(socket);
      let context: tls.SecureContext;
      try {
        context = identity.serverContext();
      } catch (err) {
        log.debug('mesh tls before a certificate is held', { error: (err as Error).message });
        metrics.refused('inbound', 'tls_handshake');
        socket.destroy();
        return;
      }
      const key = connectionKey(socket);
      pending.set(key, socket);
      socket.once('close', () => {
        if (pending.get(key) === socket) pending.delete(key);
        if (!served.has(socket)) metrics.refused('inbound', 'tls_handshake');
      });
      // Node's tls.Server has no per-connection context hook without SNI (peers dial addresses,
      // which carry none), and no public setter taking a built context: the context the next
      // TLSSocket is made with is `_sharedCreds`, read synchronously by the 'connection' handler.
      (server as unknown as { _sharedCreds: tls.SecureContext })._sharedCreds = context;
      server.emit('connection', socket);
    },
  };
}

/** A TCP connection's two ends: the TLS socket reports its TCP socket's (getpeername/getsockname). */
function connectionKey(socket: net.Socket): string {
  return `${socket.remoteAddress}:${socket.remotePort}>${socket.localAddress}:${socket.localPort}`;
}

/** The URI SANs of the verified client certificate. */
function peerIds(socket: tls.TLSSocket): string[] {
  const cert = socket.getPeerX509Certificate();
  return cert ? uriSans(cert) : [];
}
