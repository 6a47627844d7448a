/**
 * The inbound proxy, top to bottom: accept → detect → (mesh TLS) terminate mTLS, then detect
 * again on the decrypted stream → (HTTP/2 from the mesh or h2c) restore the original protocol →
 * forward to the app, (HTTP/1) forward to the app, (opaque transport header or unknown bytes)
 * join with the app port. Peers only ever reach the workload's own ports through it. Every
 * connection carries its PeerInfo (mTLS or not, verified client identity, address) down to the
 * requests on it: the app gets `weft-client-id`, metrics `tls`/`client_id`.
 */
import type { IncomingMessage } from 'node:http';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import { normalizeAuthority } from '../../lib/addr.js';
import type { AuthzPeer } from '../../lib/authz.js';
import { asWeftError, BadRequestError } from '../../lib/errors.js';
import type { ProxyContext } from '../context.js';
import { rawH1ErrorResponse } from '../http/downstream-h1.js';
import type { RequestHead, Routed } from '../http/exchange.js';
import { CLIENT_ID_HEADER } from '../http/headers.js';
import { newHttpServers } from '../http/servers.js';
import { forwardUpgrade } from '../http/upgrade.js';
import { h1Send } from '../http/upstream-h1.js';
import { h2Send } from '../http/upstream-h2.js';
import type { HttpSeries } from '../metrics/proxy-metrics.js';
import type { InboundAuthz } from '../policy/inbound-authz.js';
import type { ConnectTarget } from '../tcp/connect.js';
import { type Detected, detectProtocol, detectResultLabel } from '../tcp/detect.js';
import { labelAccepted } from '../tcp/listener.js';
import { joinSockets } from '../tcp/opaque.js';
import { newMeshTlsServer } from '../tls/mesh-tls-server.js';
import { type PeerInfo, plaintextPeer } from '../tls/peer-info.js';
import { inboundTlsLabels } from '../tls/tls-labels.js';

export interface InboundStack {
  accept(socket: net.Socket): void;
  drain(): void;
}

export function newInboundStack(ctx: ProxyContext, appPort: number, authz?: InboundAuthz): InboundStack {
  const { config, metrics, log } = ctx;
  const app = targetFor(config.appHost, appPort);
  const allowedPorts = new Set([appPort, ...config.inboundPorts]);
  const appSendH1 = h1Send(ctx.direct.h1Client, app);
  const appSendH2 = h2Send(ctx.direct.h2Pool, app, false);

  const label = (authority: string) => {
    try {
      return normalizeAuthority(authority);
    } catch {
      return authority.slice(0, 100);
    }
  };

  const identityEnabled = ctx.identity !== null;

  // The series of a connection's requests, kept with the connection's PeerInfo (every request
  // on a connection has the same peer, and nearly always the same authority): the hot path skips
  // normalizing the authority and building the series key.
  const seriesOfPeer = new WeakMap<object, { authority: string; series: HttpSeries }>();
  function seriesFor(authority: string, peer: PeerInfo | undefined): HttpSeries {
    const key = peer ?? UNKNOWN_PEER;
    const hit = seriesOfPeer.get(key);
    if (hit && hit.authority === authority) return hit.series;
    const t = inboundTlsLabels(identityEnabled, peer);
    const series = metrics.http('inbound', label(authority), app.addr, t.tls, t.extra);
    seriesOfPeer.set(key, { authority, series });
    return series;
  }

  function route(head: RequestHead, peer?: PeerInfo): Routed {
    const series = seriesFor(head.authority, peer);
    // Any weft-client-id the client sent was dropped with the hop-by-hop fields.
    if (peer?.clientId !== undefined) head.headers[CLIENT_ID_HEADER] = peer.clientId;
    // Authorization (docs/policy.md): a denied request fails at the rescue edge (403 or
    // PERMISSION_DENIED), counted in this series like any answer the proxy makes itself.
    const d = authz?.authorizeHttp(appPort, peer ?? UNKNOWN_PEER, head.method, head.path);
    if (d?.verdict === 'deny') {
      const err = authz!.deniedError(d, peer ?? UNKNOWN_PEER);
      return { series, send: () => Promise.reject(err) };
    }
    return { series, send: head.origProto === 'HTTP/2' ? appSendH2 : appSendH1 };
  }

  async function forwardOpaque(client: Duplex, port: number, peer: PeerInfo): Promise<void> {
    if (authz?.authorizeTcp(port, peer).verdict === 'deny') return resetClient(client);
    const target = port === appPort ? app : targetFor(config.appHost, port);
    let upstream: net.Socket;
    try {
      upstream = await ctx.direct.connector.connect(target);
    } catch (e) {
      log.debug('inbound opaque connect failed', { target: target.addr, error: asWeftError(e).message });
      client.destroy();
      return;
    }
    const t = inboundTlsLabels(identityEnabled, peer);
    const closed = metrics.tcp('inbound', 'dst', target.addr, t.tls, t.extra).open();
    upstream.once('close', (hadError) =>
      closed(upstream.bytesRead, upstream.bytesWritten, hadError ? 'error' : undefined),
    );
    joinSockets(client, upstream);
  }

  function upgrade(
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    defaultAuthority: string | undefined,
    peer?: PeerInfo,
  ) {
    const authority = req.headers.host ?? defaultAuthority ?? app.addr;
    const t = inboundTlsLabels(identityEnabled, peer);
    const series = metrics.http('inbound', label(authority), app.addr, t.tls, t.extra);
    const d = authz?.authorizeHttp(appPort, peer ?? UNKNOWN_PEER, req.method ?? 'GET', req.url ?? '/');
    if (d?.verdict === 'deny') {
      const err = authz!.deniedError(d, peer ?? UNKNOWN_PEER);
      // Counted like any answer the proxy makes itself, as forwardUpgrade does for its errors.
      series.request.inc();
      series.response(err.httpStatus, undefined, err.reason).observe(0);
      return void socket.end(rawH1ErrorResponse(err));
    }
    void forwardUpgrade(
      req,
      socket,
      head,
      app,
      req.url ?? '/',
      authority,
      series,
      ctx.direct.connector,
      peer?.clientId !== undefined ? { [CLIENT_ID_HEADER]: peer.clientId } : undefined,
    ).catch((e) => socket.end(rawH1ErrorResponse(asWeftError(e))));
  }

  const servers = newHttpServers(ctx, 'inbound', {
    route,
    upgrade,
    connect: () => {
      throw new BadRequestError('CONNECT is not accepted on the inbound port');
    },
  });

  // Mesh TLS is terminated only by a proxy with an identity; without one it is the app's TLS.
  const meshTls = ctx.identity
    ? newMeshTlsServer(ctx.identity, metrics, log, (socket, peer, raw) => {
        if (raw) labelAccepted(raw, inboundTlsLabels(identityEnabled, peer));
        void detectProtocol(socket, config.detectTimeoutMs, true).then((d) => {
          metrics.detected('inbound', detectResultLabel(d));
          serve(socket, d, peer);
        });
      })
    : null;

  /** Serves a connection (plaintext, or decrypted mesh TLS) by what detection found on it. */
  function serve(socket: net.Socket, d: Detected, peer: PeerInfo): void {
    // The accepted connection's own TLS labels: plaintext unless it is mesh TLS to terminate
    // (labelled when terminated, above). On a decrypted stream, not an accepted socket: a no-op.
    if (d.kind !== 'mesh-tls' || !meshTls) labelAccepted(socket, inboundTlsLabels(identityEnabled, peer));
    // A Server declared opaque authorizes (and carries) connections, never HTTP requests.
    if ((d.kind === 'h1' || d.kind === 'h2') && authz?.isOpaque(appPort))
      return void forwardOpaque(socket, appPort, peer);
    switch (d.kind) {
      case 'h2':
        servers.serveH2(socket, undefined, peer);
        break;
      case 'h1':
        servers.serveH1(socket, undefined, peer);
        break;
      case 'mesh-tls':
        // Only on the outer connection: mesh TLS inside mesh TLS is the app's business.
        if (meshTls && !peer.tls) meshTls.terminate(socket);
        else void forwardOpaque(socket, appPort, peer);
        break;
      case 'transport': {
        const port = d.header.port === 0 ? appPort : d.header.port;
        if (allowedPorts.has(port)) {
          void forwardOpaque(socket, port, peer);
          break;
        }
        log.warn("opaque transport to a port that is not the workload's", {
          port,
          authority: d.header.authority,
        });
        metrics.refused('inbound', 'port_not_allowed');
        socket.destroy();
        break;
      }
      case 'bad-transport':
        metrics.refused('inbound', 'bad_transport_header');
        socket.destroy();
        break;
      default:
        // TLS that is not the mesh's, and unknown or silent clients: bytes go to the app as they are.
        void forwardOpaque(socket, appPort, peer);
    }
  }

  const skipDetection = config.opaquePorts.includes(appPort);
  // New connections wait (at most ~1 s) for the first inbound policy; later ones go straight on.
  let policyReady = authz === undefined;
  void authz?.whenReady().then(() => (policyReady = true));
  return {
    accept: function accept(socket) {
      if (!policyReady) return void authz?.whenReady().then(() => accept(socket));
      const peer = plaintextPeer(socket);
      if (skipDetection && !meshTls) {
        metrics.detected('inbound', 'skipped');
        labelAccepted(socket, inboundTlsLabels(identityEnabled, peer));
        void forwardOpaque(socket, appPort, peer);
        return;
      }
      if (skipDetection) {
        // An opaque app port still receives the mesh as mTLS, and a meshed client always speaks
        // first (its ClientHello), so only that is looked for. The cost: an unmeshed client of a
        // server-first protocol waits out the detect timeout before the app is connected.
        void detectProtocol(socket, config.detectTimeoutMs, false).then((d) => {
          metrics.detected('inbound', d.kind === 'mesh-tls' ? 'mesh-tls' : 'skipped');
          if (d.kind === 'mesh-tls') meshTls!.terminate(socket);
          else {
            labelAccepted(socket, inboundTlsLabels(identityEnabled, peer));
            void forwardOpaque(socket, appPort, peer);
          }
        });
        return;
      }
      void detectProtocol(socket, config.detectTimeoutMs, true).then((d) => {
        metrics.detected('inbound', detectResultLabel(d));
        serve(socket, d, peer);
      });
    },
    drain: () => servers.drain(),
  };
}

/** The peer of a request that came without one (never on the inbound listener's own servers). */
const UNKNOWN_PEER: AuthzPeer = Object.freeze({ tls: false, remoteAddr: '' });

/**
 * Ends a refused connection with a TCP reset (a plain close would look like an empty answer).
 * Only a plain TCP socket can be reset (Node throws for a TLS socket, whose handle is not TCP):
 * a refused mesh-TLS connection is destroyed, and the client's own proxy ends its client's side.
 */
function resetClient(client: Duplex): void {
  const s = client as Partial<net.Socket>;
  try {
    if (typeof s.resetAndDestroy === 'function' && !s.destroyed && !('encrypted' in s))
      return void s.resetAndDestroy();
  } catch {
    // fall through: destroy without a reset
  }
  client.destroy();
}

function targetFor(host: string, port: number): ConnectTarget {
  return { host, port, addr: `${host}:${port}` };
}
