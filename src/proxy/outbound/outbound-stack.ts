/**
 * The outbound proxy, top to bottom: accept → detect → (HTTP) route → balance → endpoint →
 * connect, or (opaque) resolve → connect → join. What the local app calls, on the outbound
 * listener, through CONNECT tunnels, and on named upstream bindings.
 */
import type { IncomingMessage } from 'node:http';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import { normalizeAuthority, parseHostPort } from '../../lib/addr.js';
import { asWeftError, BadRequestError, LoopError, NoEndpointsError } from '../../lib/errors.js';
import { balancedSend, EndpointBalancer } from '../balance/endpoint-balancer.js';
import { type ProxyContext, TLS_PLAINTEXT } from '../context.js';
import type { Destination, Endpoint } from '../discovery/discovery.js';
import { rawH1ErrorResponse } from '../http/downstream-h1.js';
import type { RequestHead, Routed, Send } from '../http/exchange.js';
import { type HttpServers, newHttpServers } from '../http/servers.js';
import { forwardUpgrade } from '../http/upgrade.js';
import { h1Send } from '../http/upstream-h1.js';
import { h2Send } from '../http/upstream-h2.js';
import type { HttpSeries } from '../metrics/proxy-metrics.js';
import type { Connector, ConnectTarget } from '../tcp/connect.js';
import { detectProtocol, detectResultLabel } from '../tcp/detect.js';
import { joinSockets } from '../tcp/opaque.js';
import { encodeTransportHeader } from '../tcp/transport-header.js';
import { reachesListener } from './loop-guard.js';

export interface OutboundStack {
  /** Handles a connection accepted on the outbound listener. */
  accept(socket: net.Socket): void;
  /** Handles a connection accepted on the upstream binding for `authority` (opaque TCP). */
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
  // One balancer per destination; Destination objects live as long as discovery knows them.
  const balancers = new WeakMap<Destination, EndpointBalancer>();
  const balancerFor = (dest: Destination): EndpointBalancer => {
    let b = balancers.get(dest);
    if (!b) balancers.set(dest, (b = new EndpointBalancer()));
    return b;
  };
  const opaquePorts = new Set(config.opaquePorts);
  const meshOverH2 = config.meshHttp1Transport === 'h2';
  // What a routed request needs of its endpoint, built once per Endpoint object (discovery
  // replaces the object when an endpoint changes), so the hot path only looks it up.
  const perEndpoint = new WeakMap<Endpoint, EndpointRoute>();
  let listenPort: number | undefined;

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
    const endpoint = balancerFor(dest).pick(dest.endpoints);
    if (!endpoint) throw new NoEndpointsError(authority);
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
      const h1 = ep.meshed && meshOverH2 ? h2Send(hops.h2Pool, ep, true) : h1Send(hops.h1Agent, ep);
      er = {
        authority,
        connector: hops.connector,
        series: metrics.http('outbound', authority, ep.addr, TLS_PLAINTEXT, labels),
        sendH2: balancedSend(balancer, ep, h2Send(hops.h2Pool, ep, false)),
        sendH1: balancedSend(balancer, ep, h1),
      };
      perEndpoint.set(ep, er);
    }
    return er;
  }

  async function route(head: RequestHead): Promise<Routed> {
    let r: Resolved;
    try {
      r = await resolve(head.authority);
    } catch (err) {
      // A known service without endpoints fails under its own authority, where dashboards look
      // for its errors, not in the unlabelled series of requests that never named a service.
      if (!(err instanceof NoEndpointsError)) throw err;
      return {
        series: metrics.http('outbound', err.authority, '', TLS_PLAINTEXT),
        send: () => Promise.reject(err),
      };
    }
    if (r.endpoint && r.dest) {
      const er = endpointRoute(r.authority, r.dest, r.endpoint);
      return { series: er.series, send: head.origProto === 'HTTP/2' ? er.sendH2 : er.sendH1 };
    }
    // Outside the mesh: straight to the authority, in the client's protocol.
    const series = metrics.http('outbound', r.authority, r.target.addr, TLS_PLAINTEXT);
    const send =
      head.origProto === 'HTTP/2'
        ? h2Send(ctx.direct.h2Pool, r.target, false)
        : h1Send(ctx.direct.h1Agent, r.target);
    return { series, send };
  }

  /** Opaque TCP to an authority: the mesh transport to a meshed endpoint, else straight through. */
  async function forwardOpaque(client: Duplex, rawAuthority: string): Promise<void> {
    let r: Resolved;
    let upstream: net.Socket;
    try {
      r = await resolve(rawAuthority);
      upstream = await (r.endpoint?.meshed ? ctx.mesh : ctx.direct).connector.connect(r.target);
    } catch (e) {
      log.debug('opaque connect failed', { authority: rawAuthority, error: asWeftError(e).message });
      client.destroy();
      return;
    }
    const closed = metrics.tcp('outbound', 'dst', r.target.addr, TLS_PLAINTEXT).open();
    upstream.once('close', (hadError) =>
      closed(upstream.bytesRead, upstream.bytesWritten, hadError ? 'error' : undefined),
    );
    if (r.endpoint?.meshed) upstream.write(encodeTransportHeader({ port: 0, authority: r.authority }));
    joinSockets(client, upstream);
  }

  async function upgrade(
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    defaultAuthority: string | undefined,
  ) {
    try {
      const path = absoluteToOrigin(req.url ?? '/');
      const authority = hostOf(req) ?? defaultAuthority;
      if (!authority) throw new BadRequestError('upgrade request has no Host');
      const r = await resolve(authority);
      const { series, connector } =
        r.endpoint && r.dest
          ? endpointRoute(r.authority, r.dest, r.endpoint)
          : {
              series: metrics.http('outbound', r.authority, r.target.addr, TLS_PLAINTEXT),
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
    route,
    upgrade: (req, socket, head, def) => void upgrade(req, socket, head, def),
    connect,
  });

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
      void forwardOpaque(socket, authority);
    },
    drain: () => servers.drain(),
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
