/**
 * The inbound proxy, top to bottom: accept → detect → (HTTP/2 from the mesh or h2c) restore
 * the original protocol → forward to the app, (HTTP/1) forward to the app, (opaque transport
 * header or unknown bytes) join with the app port. Peers only ever reach the workload's own
 * ports through it.
 */
import type { IncomingMessage } from 'node:http';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import { normalizeAuthority } from '../../lib/addr.js';
import { asWeftError, BadRequestError } from '../../lib/errors.js';
import { type ProxyContext, TLS_PLAINTEXT } from '../context.js';
import { rawH1ErrorResponse } from '../http/downstream-h1.js';
import type { RequestHead, Routed } from '../http/exchange.js';
import { newHttpServers } from '../http/servers.js';
import { forwardUpgrade } from '../http/upgrade.js';
import { h1Send } from '../http/upstream-h1.js';
import { h2Send } from '../http/upstream-h2.js';
import type { ConnectTarget } from '../tcp/connect.js';
import { detectProtocol, detectResultLabel } from '../tcp/detect.js';
import { joinSockets } from '../tcp/opaque.js';

export interface InboundStack {
  accept(socket: net.Socket): void;
  drain(): void;
}

export function newInboundStack(ctx: ProxyContext, appPort: number): InboundStack {
  const { config, metrics, log } = ctx;
  const app = targetFor(config.appHost, appPort);
  const allowedPorts = new Set([appPort, ...config.inboundPorts]);
  const appSendH1 = h1Send(ctx.direct.h1Agent, app);
  const appSendH2 = h2Send(ctx.direct.h2Pool, app, false);

  const label = (authority: string) => {
    try {
      return normalizeAuthority(authority);
    } catch {
      return authority.slice(0, 100);
    }
  };

  function route(head: RequestHead): Routed {
    const series = metrics.http('inbound', label(head.authority), app.addr, TLS_PLAINTEXT);
    return { series, send: head.origProto === 'HTTP/2' ? appSendH2 : appSendH1 };
  }

  async function forwardOpaque(client: Duplex, port: number): Promise<void> {
    const target = port === appPort ? app : targetFor(config.appHost, port);
    let upstream: net.Socket;
    try {
      upstream = await ctx.direct.connector.connect(target);
    } catch (e) {
      log.debug('inbound opaque connect failed', { target: target.addr, error: asWeftError(e).message });
      client.destroy();
      return;
    }
    const closed = metrics.tcp('inbound', 'dst', target.addr, TLS_PLAINTEXT).open();
    upstream.once('close', (hadError) =>
      closed(upstream.bytesRead, upstream.bytesWritten, hadError ? 'error' : undefined),
    );
    joinSockets(client, upstream);
  }

  function upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, defaultAuthority: string | undefined) {
    const authority = req.headers.host ?? defaultAuthority ?? app.addr;
    const series = metrics.http('inbound', label(authority), app.addr, TLS_PLAINTEXT);
    void forwardUpgrade(
      req,
      socket,
      head,
      app,
      req.url ?? '/',
      authority,
      series,
      ctx.direct.connector,
    ).catch((e) => socket.end(rawH1ErrorResponse(asWeftError(e))));
  }

  const servers = newHttpServers(ctx, 'inbound', {
    route,
    upgrade,
    connect: () => {
      throw new BadRequestError('CONNECT is not accepted on the inbound port');
    },
  });

  const skipDetection = config.opaquePorts.includes(appPort);
  return {
    accept(socket) {
      if (skipDetection) {
        metrics.detected('inbound', 'skipped');
        void forwardOpaque(socket, appPort);
        return;
      }
      void detectProtocol(socket, config.detectTimeoutMs, true).then((d) => {
        metrics.detected('inbound', detectResultLabel(d));
        switch (d.kind) {
          case 'h2':
            return servers.serveH2(socket);
          case 'h1':
            return servers.serveH1(socket);
          case 'transport': {
            const port = d.header.port === 0 ? appPort : d.header.port;
            if (!allowedPorts.has(port)) {
              log.warn("opaque transport to a port that is not the workload's", {
                port,
                authority: d.header.authority,
              });
              metrics.refused('inbound', 'port_not_allowed');
              return socket.destroy();
            }
            return void forwardOpaque(socket, port);
          }
          case 'bad-transport':
            metrics.refused('inbound', 'bad_transport_header');
            return socket.destroy();
          default:
            // TLS that is not the mesh's (mTLS arrives with the identity issue) and unknown or
            // silent clients: bytes go to the app as they are.
            return void forwardOpaque(socket, appPort);
        }
      });
    },
    drain: () => servers.drain(),
  };
}

function targetFor(host: string, port: number): ConnectTarget {
  return { host, port, addr: `${host}:${port}` };
}
