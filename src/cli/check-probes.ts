/**
 * The network probes of `weft check`, each bounded by a deadline and settling with what it saw
 * (never rejecting): the Destination gRPC server, the Identity service's TLS, and a proxy's admin
 * `GET /identity`. Verdicts are made from these observations in check-evaluate.ts.
 */
import { X509Certificate } from 'node:crypto';
import http from 'node:http';
import http2 from 'node:http2';
import tls from 'node:tls';
import { type HostPort, parseHostPort } from '../lib/addr.js';
import { uriSans } from '../proxy/identity/identity-state.js';
import type { ProxyIdentityJson, ProxyObservation } from './check-evaluate.js';

/** How long one probe may take. */
export const PROBE_TIMEOUT_MS = 3_000;

/**
 * Whether a gRPC server answers at `addr`: an HTTP/2 (h2c) call to a method no server has must
 * come back with a `grpc-status` (UNIMPLEMENTED), which proves more than an open port.
 */
export function probeGrpc(
  addr: HostPort,
  timeoutMs = PROBE_TIMEOUT_MS,
): Promise<{ ok: boolean; detail: string }> {
  return new Promise((resolve) => {
    let settled = false;
    const session = http2.connect(`http://${addr.host}:${addr.port}`);
    const done = (ok: boolean, detail: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      session.destroy();
      resolve({ ok, detail });
    };
    const timer = setTimeout(() => done(false, `no answer within ${timeoutMs} ms`), timeoutMs);
    session.on('error', (err: NodeJS.ErrnoException) => done(false, err.code ?? err.message));
    const req = session.request({
      ':method': 'POST',
      ':path': '/weft.check.v1.Check/Probe',
      'content-type': 'application/grpc',
      te: 'trailers',
    });
    // A refused connection cancels the pending stream first; its cause says why.
    req.on('error', (err: NodeJS.ErrnoException) => {
      const cause = err.cause as NodeJS.ErrnoException | undefined;
      done(false, cause?.code ?? err.code ?? err.message);
    });
    const grpcStatus = (h: http2.IncomingHttpHeaders) => {
      if (h['grpc-status'] !== undefined) done(true, `grpc-status ${String(h['grpc-status'])}`);
    };
    req.on('response', (h) => {
      grpcStatus(h);
      if (!settled && h[':status'] !== 200) done(false, `HTTP ${h[':status']}, not gRPC`);
    });
    req.on('trailers', grpcStatus);
    req.on('end', () => done(false, 'answered without a grpc-status: not a gRPC server'));
    req.resume();
    req.end();
  });
}

export type IdentityTlsProbe =
  | { readonly ok: true; readonly issuerPem: string | undefined }
  | { readonly ok: false; readonly detail: string };

/**
 * A TLS handshake with the Identity service as a proxy makes one (docs/identity.md): the chain
 * must verify against `anchorPems` and the certificate must name exactly `expectedId`. No client
 * certificate is sent (the service asks for one but does not require it). Resolves with the
 * issuer the server presented, so its signature can be checked against the bundle.
 */
export function probeIdentityTls(
  addr: HostPort,
  anchorPems: readonly string[],
  expectedId: string,
  timeoutMs = PROBE_TIMEOUT_MS,
): Promise<IdentityTlsProbe> {
  return new Promise((resolve) => {
    let settled = false;
    const socket = tls.connect({
      host: addr.host,
      port: addr.port,
      ca: anchorPems.join(''),
      ALPNProtocols: ['h2'],
      minVersion: 'TLSv1.3',
      servername: `identity.${new URL(expectedId).host}`,
      checkServerIdentity: (_host, cert) => {
        const ids = cert.raw ? uriSans(new X509Certificate(cert.raw)) : [];
        return ids.length === 1 && ids[0] === expectedId
          ? undefined
          : new Error(`it presents ${JSON.stringify(ids)}, expected ${expectedId}`);
      },
    });
    const done = (r: IdentityTlsProbe) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(r);
    };
    const timer = setTimeout(
      () => done({ ok: false, detail: `no handshake within ${timeoutMs} ms` }),
      timeoutMs,
    );
    socket.on('error', (err: NodeJS.ErrnoException) => done({ ok: false, detail: err.code ?? err.message }));
    socket.on('secureConnect', () => {
      const leaf = socket.getPeerCertificate(true);
      const issuer = leaf.issuerCertificate;
      const issuerPem =
        issuer?.raw && issuer !== leaf ? new X509Certificate(issuer.raw).toString() : undefined;
      done({ ok: true, issuerPem });
    });
  });
}

/** GET `/identity` on a proxy's admin listener (`adminAddress`, `host:port`). */
export function probeProxyIdentity(
  adminAddress: string,
  timeoutMs = PROBE_TIMEOUT_MS,
): Promise<ProxyObservation> {
  const unreachable = (detail: string): ProxyObservation => ({ kind: 'unreachable', adminAddress, detail });
  let addr: HostPort;
  try {
    addr = parseHostPort(adminAddress);
  } catch {
    return Promise.resolve(unreachable('not a host:port'));
  }
  const badAnswer = (detail: string): ProxyObservation => ({ kind: 'bad-answer', adminAddress, detail });
  return new Promise((resolve) => {
    const req = http.get({ host: addr.host, port: addr.port, path: '/identity', agent: false });
    const timer = setTimeout(() => {
      resolve(unreachable(`no answer within ${timeoutMs} ms`));
      req.destroy();
    }, timeoutMs);
    const settle = (o: ProxyObservation) => {
      clearTimeout(timer);
      resolve(o); // later calls are no-ops
    };
    req.on('error', (err: NodeJS.ErrnoException) => settle(unreachable(err.code ?? err.message)));
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        if (body.length < 64 * 1024) body += c;
      });
      res.on('error', (err) => settle(unreachable(`answer cut: ${err.message}`)));
      res.on('end', () => {
        if (res.statusCode === 404 && body.includes('no identity'))
          return settle({ kind: 'no-identity', adminAddress });
        if (res.statusCode !== 200) return settle(badAnswer(`HTTP ${res.statusCode}`));
        try {
          settle({ kind: 'identity', adminAddress, status: parseIdentityJson(body) });
        } catch {
          settle(badAnswer('not an identity status'));
        }
      });
    });
  });
}

function parseIdentityJson(body: string): ProxyIdentityJson {
  const j = JSON.parse(body) as ProxyIdentityJson;
  if (typeof j?.identity !== 'string' || !Array.isArray(j.anchors)) throw new Error('not an identity status');
  return j;
}
