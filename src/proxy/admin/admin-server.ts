/**
 * The admin listener (DESIGN.md §2): metrics, readiness, liveness, the effective config, the
 * identity, the log level, and shutdown. It binds to loopback by default; `/shutdown` and
 * log-level changes are refused from any non-loopback peer even if the operator binds it wider.
 */
import http from 'node:http';
import { isLogLevel, type Logger } from '../../lib/log.js';
import type { Registry } from '../../lib/metrics/registry.js';

export interface AdminDeps {
  readonly registry: Registry;
  readonly log: Logger;
  /** The frozen effective configuration, shown at /config. */
  readonly config: unknown;
  ready(): boolean;
  /** This proxy's identity status for /identity (docs/identity.md); null when it has none. */
  identity?(): unknown;
  /** Starts graceful shutdown (idempotent). */
  shutdown(): void;
}

const MAX_BODY_BYTES = 1024;

export function newAdminServer(deps: AdminDeps): http.Server {
  return http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const send = (status: number, body: string, type = 'text/plain; charset=utf-8') => {
      res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
      res.end(body);
    };
    const loopback = isLoopback(req.socket.remoteAddress);
    const method = req.method ?? 'GET';
    if (path === '/metrics' && method === 'GET')
      return send(200, deps.registry.render(), 'text/plain; version=0.0.4; charset=utf-8');
    if (path === '/live' && method === 'GET') return send(200, 'live\n');
    if (path === '/ready' && method === 'GET')
      return deps.ready() ? send(200, 'ready\n') : send(503, 'not ready\n');
    if (path === '/identity' && method === 'GET') {
      const status = deps.identity?.() ?? null;
      return status === null
        ? send(404, 'this proxy has no identity\n')
        : send(200, `${JSON.stringify(status, null, 2)}\n`, 'application/json');
    }
    if (path === '/config' && method === 'GET')
      return send(200, `${JSON.stringify(deps.config, null, 2)}\n`, 'application/json');
    if (path === '/log-level') {
      if (method === 'GET') return send(200, `${deps.log.level}\n`);
      if (method !== 'PUT' && method !== 'POST') return send(405, 'use GET or PUT\n');
      if (!loopback) return send(403, 'log level can only be changed from loopback\n');
      return readBody(
        req,
        (body) => {
          const level = body.trim();
          if (!isLogLevel(level)) return send(400, `unknown log level ${JSON.stringify(level)}\n`);
          deps.log.level = level;
          send(200, `${level}\n`);
        },
        () => send(413, 'body too large\n'),
      );
    }
    if (path === '/shutdown') {
      if (method !== 'POST') return send(405, 'use POST\n');
      if (!loopback) return send(403, 'shutdown is only accepted from loopback\n');
      send(202, 'shutting down\n');
      deps.shutdown();
      return;
    }
    send(404, 'not found\n');
  });
}

function isLoopback(addr: string | undefined): boolean {
  return addr !== undefined && (addr.startsWith('127.') || addr === '::1' || addr.startsWith('::ffff:127.'));
}

function readBody(req: http.IncomingMessage, ok: (body: string) => void, tooLarge: () => void): void {
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (c: string) => {
    body += c;
    if (body.length > MAX_BODY_BYTES) {
      tooLarge();
      req.destroy();
    }
  });
  req.on('end', () => ok(body));
}
