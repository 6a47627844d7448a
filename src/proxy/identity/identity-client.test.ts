/**
 * ControlPlaneIdentity against a scripted Identity service (real grpc-js over real TLS on
 * loopback, certificates from the test CA): what it sends on bootstrap and renewal, and that it
 * refuses a service that is not `spiffe://<td>/ns/weft/sa/identity`. The real control plane is
 * exercised end to end in test/proxy-identity.test.ts.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { type IdentityHandlers, identityApi, type TrustBundleMessage } from '../../../proto/identity.js';
import { eventually } from '../../../test/support/eventually.js';
import { newTestCa, type TestCa } from '../../../test/support/test-ca.js';
import { newLogger } from '../../lib/log.js';
import { ControlPlaneIdentity } from './identity-client.js';
import { x509 } from './x509-setup.js';

const BOOKS = 'spiffe://weft.local/ns/default/sa/books';
const SERVICE = 'spiffe://weft.local/ns/weft/sa/identity';
const log = newLogger('error', {}, () => {});

interface SeenCall {
  readonly token: string;
  /** SHA-256 fingerprint of the client certificate the TLS handshake verified, if any. */
  readonly peer: string | undefined;
  /** The CSR's public key, SPKI DER base64. */
  readonly spki: string;
}

/** An Identity service that signs every CSR for `leafTtlMs` and records what it was sent. */
async function scriptedService(ca: TestCa, serverId: string, leafTtlMs: number) {
  const seen: SeenCall[] = [];
  const watchers = new Set<grpc.ServerWritableStream<unknown, TrustBundleMessage>>();
  const bundle = (generation: string): TrustBundleMessage => ({
    anchorPems: [...ca.anchorsPem],
    issuerGeneration: generation,
    trustDomain: 'weft.local',
  });
  let generation = '1';
  const handlers: IdentityHandlers = {
    Certify: (call, callback) => {
      void (async () => {
        const raw = call.getAuthContext().sslPeerCertificate?.raw;
        const csr = new x509.Pkcs10CertificateRequest(new Uint8Array(call.request.certificateSigningRequest));
        seen.push({
          token: call.request.token,
          peer: raw ? new X509Certificate(raw).fingerprint256 : undefined,
          spki: Buffer.from(csr.publicKey.rawData).toString('base64'),
        });
        const notBefore = new Date(Math.floor(Date.now() / 1000) * 1000);
        const notAfter = new Date(notBefore.getTime() + leafTtlMs);
        const leafPem = await ca.signCsr(new Uint8Array(call.request.certificateSigningRequest), {
          notBefore,
          notAfter,
        });
        callback(null, {
          leafPem,
          intermediatePems: [ca.intermediate.certPem],
          validUntilUnixMs: notAfter.getTime(),
          trust: bundle(generation),
        });
      })().catch((err: Error) => callback({ code: grpc.status.INTERNAL, details: err.message }));
    },
    WatchTrust: (call) => {
      watchers.add(call);
      call.on('cancelled', () => watchers.delete(call));
      call.write(bundle(generation));
    },
  };
  const leaf = await ca.issue(serverId);
  const server = new grpc.Server();
  server.addService(identityApi().service, handlers);
  // Asks for a client certificate without requiring one (bootstrap has none), as the real
  // service does; ServerCredentials.createSsl cannot (it requests one only when it requires it).
  const caUpdate = { caCertificate: Buffer.from(ca.anchorsPem.join('')) };
  const idUpdate = { certificate: Buffer.from(leaf.chainPem.join('')), privateKey: Buffer.from(leaf.keyPem) };
  const provider: grpc.experimental.CertificateProvider = {
    addCaCertificateListener: (l) => setImmediate(() => l(caUpdate)),
    removeCaCertificateListener: () => {},
    addIdentityCertificateListener: (l) => setImmediate(() => l(idUpdate)),
    removeIdentityCertificateListener: () => {},
  };
  const creds = grpc.experimental.createCertificateProviderServerCredentials(provider, provider, false);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', creds, (err, p) => (err ? reject(err) : resolve(p))),
  );
  return {
    addr: `127.0.0.1:${port}`,
    seen,
    /** Announces a re-issued issuer on every WatchTrust stream. */
    announce(next: string) {
      generation = next;
      for (const w of watchers) w.write(bundle(next));
    },
    close: () => server.forceShutdown(),
  };
}

describe('ControlPlaneIdentity', () => {
  let ca: TestCa;
  const closers: (() => void)[] = [];
  before(async () => {
    ca = await newTestCa();
  });
  after(() => {
    for (const c of closers) c();
  });

  function client(addr: string, results: string[]) {
    const identity = new ControlPlaneIdentity(
      {
        id: BOOKS,
        addr,
        token: 'bootstrap-token',
        anchors: ca.anchorsPem,
        onRefresh: (r) => results.push(r),
        backoff: { minBackoffMs: 50, maxBackoffMs: 500, jitter: 0.5 },
      },
      log,
    );
    closers.push(() => identity.close());
    identity.start();
    return identity;
  }

  it('bootstraps with the token, then renews with its leaf as client certificate and a new key', async () => {
    const service = await scriptedService(ca, SERVICE, 3_000);
    closers.push(service.close);
    const results: string[] = [];
    const identity = client(service.addr, results);
    await identity.whenReady();
    const first = identity.certificate();
    assert.ok(first);
    // 70% of 3 s: the renewal comes ~2 s later.
    await eventually(() => assert.ok(service.seen.length >= 2), { timeoutMs: 10_000 });
    await eventually(() => assert.notEqual(identity.certificate()?.fingerprint, first.fingerprint));
    const [boot, renewal] = service.seen;
    assert.equal(boot?.token, 'bootstrap-token');
    assert.equal(boot?.peer, undefined, 'no client certificate on bootstrap');
    assert.equal(renewal?.token, '', 'the token is never sent again');
    const firstFp = first.fingerprint.toUpperCase().match(/../g)?.join(':');
    assert.equal(renewal?.peer, firstFp, 'renewal presents the leaf it renews');
    assert.notEqual(renewal?.spki, boot?.spki, 'a new key per request');
    assert.deepEqual(results.slice(0, 2), ['ok', 'ok']);
  });

  it('renews within seconds when WatchTrust announces a new issuer generation', async () => {
    const service = await scriptedService(ca, SERVICE, 3_600_000);
    closers.push(service.close);
    const identity = client(service.addr, []);
    await identity.whenReady();
    assert.equal(service.seen.length, 1);
    service.announce('2');
    await eventually(() => assert.equal(service.seen.length, 2), { timeoutMs: 10_000 });
  });

  it('refuses an identity service whose certificate names another identity', async () => {
    const service = await scriptedService(ca, BOOKS, 3_600_000);
    closers.push(service.close);
    const results: string[] = [];
    const identity = client(service.addr, results);
    await eventually(() => assert.ok(results.filter((r) => r === 'failure').length >= 2), {
      timeoutMs: 10_000,
    });
    assert.equal(identity.ready(), false);
    assert.equal(service.seen.length, 0, 'the token was never sent to it');
  });

  it('refuses an identity service from another CA', async () => {
    const other = await newTestCa('Other');
    const service = await scriptedService(other, SERVICE, 3_600_000);
    closers.push(service.close);
    const results: string[] = [];
    const identity = client(service.addr, results);
    await eventually(() => assert.ok(results.filter((r) => r === 'failure').length >= 2), {
      timeoutMs: 10_000,
    });
    assert.equal(identity.ready(), false);
    assert.equal(service.seen.length, 0);
  });
});
