/**
 * The outbound proxy, top to bottom: accept → detect → (HTTP) route → balance → endpoint →
 * connect, or (opaque) resolve → connect → join. What the local app calls, on the outbound
 * listener, through CONNECT tunnels, and on named upstream bindings.
 */
import type { IncomingMessage } from 'node:http';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import { normalizeAuthority, parseHostPort } from '../../lib/addr.js';
import {
  asWeftError,
  BadRequestError,
  LoadShedError,
  LoopError,
  NoEndpointsError,
} from '../../lib/errors.js';
import { BalanceQueue } from '../balance/balance-queue.js';
import { type Attempt, connectRetryRoute } from '../balance/connect-retry.js';
import { balancedSend, type EndpointBalancer, isConnectFailure } from '../balance/endpoint-balancer.js';
import type { ProxyContext } from '../context.js';
import type { Destination, Endpoint } from '../discovery/discovery.js';
import { rawH1ErrorResponse } from '../http/downstream-h1.js';
import type { RequestHead, Routed, Send } from '../http/exchange.js';
import { type HttpServers, newHttpServers } from '../http/servers.js';
import { forwardUpgrade } from '../http/upgrade.js';
import { h1Send } from '../http/upstream-h1.js';
import { h2Send } from '../http/upstream-h2.js';
import { IdentityNotReadyError } from '../identity/identity-errors.js';
import type { HttpSeries } from '../metrics/proxy-metrics.js';
import type { Connector, ConnectTarget } from '../tcp/connect.js';
import { detectProtocol, detectResultLabel } from '../tcp/detect.js';
import { joinSockets } from '../tcp/opaque.js';
import { encodeTransportHeader } from '../tcp/transport-header.js';
import { outboundTlsLabels, type TlsLabels, withLabels } from '../tls/tls-labels.js';
import { reachesListener } from './loop-guard.js';

export interface OutboundStack {
  /** Handles a connection accepted on the outbound listener. */
  accept(socket: net.Socket): void;
  /**
   * Handles a connection accepted on the upstream binding for `authority`: HTTP/1 and HTTP/2
   * requests are routed to `authority` whatever their Host says (which is forwarded as sent);
   * anything else, and every connection to an opaque port or destination, is opaque TCP.
   */
  acceptUpstream(socket: net.Socket, authority: string): void;
  drain(): void;
}

/** A routed endpoint's metric series, connector and sends (balanced), per client protocol. */
interface EndpointRoute {
  readonly authority: string;
  readonly series: HttpSeries;
  readonly connector: Connector;
  readonly sendH1: Send;
  readonly sendH2: Send;
}

/** Where a request or connection goes once discovery has answered. */
interface Resolved {
  readonly authority: string;
  readonly dest: Destination | null;
  /** The endpoint chosen, or the authority itself when the mesh does not know it. */
  readonly target: ConnectTarget;
  readonly endpoint: Endpoint | undefined;
}

/** `listenAddr` is the outbound listener's bound address, once known (for the loop guard). */
export function newOutboundStack(ctx: ProxyContext, listenAddr: () => string | undefined): OutboundStack {
  const { config, metrics, log } = ctx;
  // One balancer and wait queue per destination; Destination objects live as long as discovery
  // knows them (and as long as a request holds one).
  const queues = new WeakMap<Destination, BalanceQueue>();
  const queueOptions = { capacity: config.balancerQueueCapacity, failFastMs: config.failfastTimeoutMs };
  const ewma = {
    defaultRttMs: config.ewmaDefaultRttMs,
    decayMs: config.ewmaDecayMs,
    smoothingMs: config.ewmaSmoothingMs,
  };
  const queueFor = (dest: Destination): BalanceQueue => {
    let q = queues.get(dest);
    if (!q) queues.set(dest, (q = new BalanceQueue(dest, queueOptions, { ewma })));
    return q;
  };
  const balancerFor = (dest: Destination): EndpointBalancer => queueFor(dest).balancer;
  const opaquePorts = new Set(config.opaquePorts);
  const meshOverH2 = config.meshHttp1Transport === 'h2';
  // What a routed request needs of its endpoint, built once per Endpoint object (discovery
  // replaces the object when an endpoint changes), so the hot path only looks it up.
  const perEndpoint = new WeakMap<Endpoint, EndpointRoute>();
  let listenPort: number | undefined;
  // mTLS to an endpoint exactly when this proxy has an identity, the endpoint is a meshed proxy
  // and discovery gave its identity: the mesh connector then dials TLS (it reads `identity` off
  // the endpoint, the ConnectTarget of every send). Everything else is plaintext, and labelled so.
  const identityEnabled = ctx.identity !== null;
  const plaintext = outboundTlsLabels(identityEnabled, undefined);
  const endpointTls = (ep: Endpoint | undefined): TlsLabels =>
    ep?.meshed ? outboundTlsLabels(identityEnabled, ep.identity) : plaintext;

  /**
   * The first certificate is fetched while the listeners bind: a request to the mesh that
   * arrives before it is held waits for it (as long as for an endpoint) instead of failing its
   * mTLS connect. Undefined (no wait) once it is held, or without an identity.
   */
  function identityWait(): Promise<void> | undefined {
    const id = ctx.identity;
    if (!id || id.ready()) return undefined;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new IdentityNotReadyError(id.id)), config.failfastTimeoutMs);
      void id.whenReady().then(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  async function resolve(rawAuthority: string): Promise<Resolved> {
    let authority: string;
    try {
      authority = normalizeAuthority(rawAuthority);
    } catch (err) {
      throw new BadRequestError(`invalid authority: ${(err as Error).message}`);
    }
    const dest = ctx.discovery ? await ctx.discovery.resolve(authority) : null;
    if (!dest) {
      const hp = parseHostPort(authority);
      // Only an authority on the listener's own port can loop; only those pay for a lookup.
      listenPort ??= portOf(listenAddr());
      if (hp.port === listenPort && (await reachesListener(hp.host, hp.port, listenAddr()))) {
        throw new LoopError(authority);
      }
      return {
        authority,
        dest,
        target: { host: hp.host, port: hp.port, addr: authority },
        endpoint: undefined,
      };
    }
    const waitIdentity = identityWait();
    if (waitIdentity) await waitIdentity;
    // No endpoint available: wait in the destination's queue (bounded, with a deadline).
    const queue = queueFor(dest);
    const picked = queue.pick();
    if (!(picked instanceof Promise)) return { authority, dest, target: picked, endpoint: picked };
    log.debug('waiting for an endpoint', { authority, waiting: queue.waiting });
    const endpoint = await picked;
    return { authority, dest, target: endpoint, endpoint };
  }

  /** The metric series and sends of `ep` as an endpoint of `authority` in `dest`. */
  function endpointRoute(authority: string, dest: Destination, ep: Endpoint): EndpointRoute {
    let er = perEndpoint.get(ep);
    if (!er || er.authority !== authority) {
      const labels: Record<string, string> = {};
      for (const k in ep.labels) labels[`dst_${k.replace(/[^a-zA-Z0-9_]/g, '_')}`] = ep.labels[k];
      const balancer = balancerFor(dest);
      const hops = ep.meshed ? ctx.mesh : ctx.direct;
      const tls = endpointTls(ep);
      const h1 = ep.meshed && meshOverH2 ? h2Send(hops.h2Pool, ep, true) : h1Send(hops.h1Client, ep);
      er = {
        authority,
        connector: hops.connector,
        series: metrics.http('outbound', authority, ep.addr, tls.tls, withLabels(tls, labels)),
        sendH2: balancedSend(balancer, ep, h2Send(hops.h2Pool, ep, false)),
        sendH1: balancedSend(balancer, ep, h1),
      };
      perEndpoint.set(ep, er);
    }
    return er;
  }

  /** `authority`: where to route, when not what the client named (an upstream binding's service). */
  async function route(head: RequestHead, authority = head.authority): Promise<Routed> {
    let r: Resolved;
    try {
      r = await resolve(authority);
    } catch (err) {
      // A known service without endpoints fails under its own authority, where dashboards look
      // for its errors, not in the unlabelled series of requests that never named a service.
      if (!(err instanceof NoEndpointsError || err instanceof LoadShedError)) throw err;
      return {
        series: metrics.http('outbound', err.authority, '', plaintext.tls, plaintext.extra),
        send: () => Promise.reject(err),
      };
    }
    if (r.endpoint && r.dest) {
      const { authority, dest, endpoint } = r;
      const h2 = head.origProto === 'HTTP/2';
      const attempt = (ep: Endpoint): Attempt => {
        const er = endpointRoute(authority, dest, ep);
        return { series: er.series, send: h2 ? er.sendH2 : er.sendH1 };
      };
      // An endpoint that cannot be reached costs the request nothing when another one can.
      return connectRetryRoute(
        attempt(endpoint),
        () => {
          const other = queueFor(dest).pickOther(endpoint);
          return other && attempt(other);
        },
        () => metrics.retried('outbound', authority, 'http', 'connect'),
      );
    }
    // Outside the mesh: straight to the authority, in the client's protocol.
    const series = metrics.http('outbound', r.authority, r.target.addr, plaintext.tls, plaintext.extra);
    const send =
      head.origProto === 'HTTP/2'
        ? h2Send(ctx.direct.h2Pool, r.target, false)
        : h1Send(ctx.direct.h1Client, r.target);
    return { series, send };
  }

  /** Opaque TCP to an authority: the mesh transport to a meshed endpoint, else straight through. */
  async function forwardOpaque(client: Duplex, rawAuthority: string): Promise<void> {
    let r: Resolved;
    let opened: { target: ConnectTarget; endpoint: Endpoint | undefined; upstream: net.Socket };
    try {
      r = await resolve(rawAuthority);
      opened = await connectOpaque(r);
    } catch (e) {
      log.debug('opaque connect failed', { authority: rawAuthority, error: asWeftError(e).message });
      client.destroy();
      return;
    }
    const { target, endpoint, upstream } = opened;
    const tls = endpointTls(endpoint);
    const closed = metrics.tcp('outbound', 'dst', target.addr, tls.tls, tls.extra).open();
    upstream.once('close', (hadError) =>
      closed(upstream.bytesRead, upstream.bytesWritten, hadError ? 'error' : undefined),
    );
    if (endpoint?.meshed) upstream.write(encodeTransportHeader({ port: 0, authority: r.authority }));
    joinSockets(client, upstream);
  }

  /**
   * The upstream connection of an opaque stream, balanced per connection: once more to another
   * endpoint when the chosen one cannot be reached.
   */
  async function connectOpaque(r: Resolved) {
    const { dest, endpoint } = r;
    if (!dest || !endpoint) {
      return { target: r.target, endpoint, upstream: await ctx.direct.connector.connect(r.target) };
    }
    const queue = queueFor(dest);
    try {
      return { target: endpoint, endpoint, upstream: await connectEndpoint(queue.balancer, endpoint) };
    } catch (err) {
      const other = isConnectFailure(err) ? queue.pickOther(endpoint) : undefined;
      if (!other) throw err;
      metrics.retried('outbound', r.authority, 'tcp', 'connect');
      return { target: other, endpoint: other, upstream: await connectEndpoint(queue.balancer, other) };
    }
  }

  /**
   * Connects to `ep` for an opaque stream; the balancer sees it pending while it is open, its
   * connect time as its latency, and a failed connect as the endpoint's failure.
   */
  async function connectEndpoint(balancer: EndpointBalancer, ep: Endpoint): Promise<net.Socket> {
    const conn = balancer.start(ep);
    try {
      const socket = await (ep.meshed ? ctx.mesh : ctx.direct).connector.connect(ep);
      conn.responded();
      socket.once('close', conn.end);
      return socket;
    } catch (err) {
      if (isConnectFailure(err)) conn.connectFailed();
      conn.end();
      throw err;
    }
  }

  /** `routeAuthority`: where to route, when not the request's Host (an upstream binding's service). */
  async function upgrade(
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    defaultAuthority: string | undefined,
    routeAuthority?: string,
  ) {
    try {
      const path = absoluteToOrigin(req.url ?? '/');
      const authority = hostOf(req) ?? defaultAuthority;
      if (!authority) throw new BadRequestError('upgrade request has no Host');
      const r = await resolve(routeAuthority ?? authority);
      const { series, connector } =
        r.endpoint && r.dest
          ? endpointRoute(r.authority, r.dest, r.endpoint)
          : {
              series: metrics.http('outbound', r.authority, r.target.addr, plaintext.tls, plaintext.extra),
              connector: ctx.direct.connector,
            };
      await forwardUpgrade(req, socket, head, r.target, path, authority, series, connector);
    } catch (e) {
      socket.end(rawH1ErrorResponse(asWeftError(e)));
    }
  }

  function connect(req: IncomingMessage, socket: Duplex, head: Buffer) {
    const authority = req.url ?? '';
    let port: number;
    try {
      port = parseHostPort(authority).port;
      if (port === 0) throw new Error('port 0');
    } catch {
      throw new BadRequestError(`CONNECT target ${JSON.stringify(authority)} is not host:port`);
    }
    socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    if (head.length > 0) socket.unshift(head);
    const tunnel = socket as net.Socket;
    void skipsDetection(authority, port).then(async (skip) => {
      if (skip) {
        metrics.detected('outbound', 'skipped');
        return forwardOpaque(tunnel, authority);
      }
      const d = await detectProtocol(tunnel, config.detectTimeoutMs, false);
      metrics.detected('outbound', detectResultLabel(d));
      if (d.kind === 'h2') servers.serveH2(tunnel, authority);
      else if (d.kind === 'h1') servers.serveH1(tunnel, authority);
      else void forwardOpaque(tunnel, authority);
    });
  }

  /**
   * Server-first protocols must not wait on detection: well-known opaque ports, and
   * destinations that discovery marks opaque, skip it. Never rejects.
   */
  async function skipsDetection(rawAuthority: string, port: number): Promise<boolean> {
    if (opaquePorts.has(port)) return true;
    try {
      return (await ctx.discovery?.resolve(normalizeAuthority(rawAuthority)))?.opaque === true;
    } catch {
      return false; // a bad authority is reported by whichever path handles the tunnel
    }
  }

  const servers: HttpServers = newHttpServers(ctx, 'outbound', {
    route: (head) => route(head),
    upgrade: (req, socket, head, def) => void upgrade(req, socket, head, def),
    connect,
  });

  // One pair of HTTP servers per upstream binding, made on its first HTTP connection: their
  // requests and upgrades go to the binding's service; a CONNECT is served as on the outbound
  // listener.
  const bindingServers = new Map<string, HttpServers>();
  const serversFor = (authority: string): HttpServers => {
    let s = bindingServers.get(authority);
    if (!s) {
      s = newHttpServers(ctx, 'outbound', {
        route: (head) => route(head, authority),
        upgrade: (req, socket, head) => void upgrade(req, socket, head, authority, authority),
        connect,
      });
      if (ctx.draining) s.drain();
      bindingServers.set(authority, s);
    }
    return s;
  };

  return {
    accept(socket) {
      // The app talks HTTP to the outbound listener (it has no other way to name a
      // destination), so anything that is not the HTTP/2 preface goes to the HTTP/1 parser,
      // which answers garbage with a precise 400.
      void detectProtocol(socket, config.detectTimeoutMs, false).then((d) => {
        metrics.detected('outbound', detectResultLabel(d));
        if (d.kind === 'h2') servers.serveH2(socket);
        else servers.serveH1(socket);
      });
    },
    acceptUpstream(socket, authority) {
      // What an app that ignores proxy settings needs: it calls the binding as if it were the
      // service. Server-first ports and opaque destinations skip detection, as CONNECT tunnels
      // do (not counted as `skipped`: the binding, not the app, chose opaque here).
      void skipsDetection(authority, parseHostPort(authority).port).then(async (skip) => {
        if (skip) return forwardOpaque(socket, authority);
        const d = await detectProtocol(socket, config.detectTimeoutMs, false);
        metrics.detected('outbound', detectResultLabel(d));
        if (d.kind === 'h2') serversFor(authority).serveH2(socket);
        else if (d.kind === 'h1') serversFor(authority).serveH1(socket);
        else void forwardOpaque(socket, authority);
      });
    },
    drain: () => {
      servers.drain();
      for (const s of bindingServers.values()) s.drain();
    },
  };
}

function hostOf(req: IncomingMessage): string | undefined {
  const url = req.url ?? '/';
  if (!url.startsWith('/')) {
    try {
      return new URL(url).host;
    } catch {
      return undefined;
    }
  }
  return req.headers.host;
}

function absoluteToOrigin(url: string): string {
  if (url.startsWith('/')) return url;
  try {
    const u = new URL(url);
    return `${u.pathname}${u.search}`;
  } catch {
    throw new BadRequestError('invalid request target');
  }
}

function portOf(addr: string | undefined): number | undefined {
  return addr === undefined ? undefined : parseHostPort(addr).port;
}
