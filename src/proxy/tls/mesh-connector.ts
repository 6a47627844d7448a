/**
 * The mesh connector (docs/identity.md, "Between proxies"): to an endpoint whose discovery entry
 * carries an identity, a TLS 1.3 connection with this workload's current client certificate and
 * ALPN `weft.mesh/1`, accepted only when the peer's chain ends at a trust anchor and its one URI
 * SAN is exactly the identity discovery promised. Endpoints without an identity get plain TCP.
 *
 * Node holds back everything written to a TLS socket until the peer is verified (tested in
 * test/mtls.test.ts), so a request never reaches a peer that fails the check.
 */
import { X509Certificate } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import { ConnectError, ConnectTimeoutError, WeftError } from '../../lib/errors.js';
import { uriSans } from '../identity/identity-state.js';
import type { LocalIdentity } from '../identity/local-identity.js';
import { type Connector, type ConnectTarget, newTcpConnector } from '../tcp/connect.js';
import { MESH_ALPN } from './mesh-alpn.js';
import { MeshTlsError, PeerIdentityMismatchError } from './tls-errors.js';

/** `identity` supplies the client context per connection, so a renewed certificate is used at once. */
export function newMeshConnector(identity: LocalIdentity, connectTimeoutMs: number): Connector {
  const tcp = newTcpConnector(connectTimeoutMs);
  return {
    connect: (target) =>
      target.identity
        ? connectMeshTls(identity, target, target.identity, connectTimeoutMs)
        : tcp.connect(target),
    connecting: (target) =>
      target.identity
        ? meshTlsSocket(identity, target, target.identity, connectTimeoutMs, false)
        : tcp.connecting(target),
  };
}

/** Resolves once the peer is verified; rejects with ConnectError, ConnectTimeoutError, MeshTlsError or PeerIdentityMismatchError. */
function connectMeshTls(
  identity: LocalIdentity,
  target: ConnectTarget,
  expected: string,
  timeoutMs: number,
): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = meshTlsSocket(identity, target, expected, timeoutMs, true);
    let tcpConnected = false;
    const onError = (err: Error) =>
      reject(
        err instanceof WeftError
          ? err
          : tcpConnected
            ? new MeshTlsError(target.addr, err)
            : new ConnectError(target.addr, err),
      );
    socket.once('connect', () => (tcpConnected = true));
    socket.once('error', onError);
    socket.once('secureConnect', () => {
      socket.removeListener('error', onError);
      resolve(socket);
    });
  });
}

/**
 * A TLS socket to `target` that is connecting now. The connect timeout covers TCP and the
 * handshake. Errors: PeerIdentityMismatchError, ConnectTimeoutError, or Node's TCP/TLS errors
 * (see `meshTlsFailure`). Before this proxy holds a certificate, a socket that fails with
 * IdentityNotReadyError.
 */
function meshTlsSocket(
  identity: LocalIdentity,
  target: ConnectTarget,
  expected: string,
  timeoutMs: number,
  allowHalfOpen: boolean,
): net.Socket {
  let secureContext: tls.SecureContext;
  try {
    secureContext = identity.clientContext();
  } catch (err) {
    const failed = new net.Socket();
    // Fail on a later turn: the HTTP clients attach their 'error' listener on a nextTick of
    // their own, and an error emitted before that would be unhandled and end the process.
    setImmediate(() => failed.destroy(err as Error));
    return failed;
  }
  const options: tls.ConnectionOptions & { allowHalfOpen: boolean } = {
    host: target.host,
    port: target.port,
    secureContext,
    ALPNProtocols: [MESH_ALPN],
    // Chain verification against the anchors in the context; the default hostname check is
    // replaced by the SPIFFE ID check. No session resumption: Node skips this check on resumed sessions.
    rejectUnauthorized: true,
    checkServerIdentity: (_host, cert) => checkPeerIdentity(target.addr, expected, cert),
    // Documented for tls.connect (opaque TCP passes half-closes on), missing from @types/node.
    allowHalfOpen,
  };
  const socket = tls.connect(options);
  socket.setNoDelay(true);
  const timer = setTimeout(() => socket.destroy(new ConnectTimeoutError(target.addr, timeoutMs)), timeoutMs);
  socket.once('secureConnect', () => clearTimeout(timer));
  socket.once('close', () => clearTimeout(timer));
  return socket;
}

/** Undefined when the peer's certificate names exactly `expected`, else the error to fail with. */
export function checkPeerIdentity(
  addr: string,
  expected: string,
  cert: tls.PeerCertificate,
): PeerIdentityMismatchError | undefined {
  let uris: string[];
  try {
    uris = uriSans(new X509Certificate(cert.raw));
  } catch {
    uris = [];
  }
  return uris.length === 1 && uris[0] === expected
    ? undefined
    : new PeerIdentityMismatchError(addr, expected, uris);
}

/**
 * The typed error for a failure Node reports on a mesh TLS socket (an untrusted or expired
 * chain, a TLS alert, a protocol version the peer refuses), or undefined when `err` is not a TLS
 * failure. For clients that get the socket's errors directly (the HTTP/1 pool, HTTP/2).
 */
export function meshTlsFailure(addr: string, err: NodeJS.ErrnoException): WeftError | undefined {
  const code = err.code ?? '';
  return /^ERR_(SSL|TLS|OSSL)_|CERT|ISSUER|SIGNATURE|_CA$|INVALID_PURPOSE|PATH_LENGTH/.test(code)
    ? new MeshTlsError(addr, err)
    : undefined;
}
