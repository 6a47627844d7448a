/**
 * The identity service of a real control plane (issue 4): Certify over real TLS with real
 * grpc-js clients, bootstrap tokens, renewal with the client certificate, the CA on disk
 * (modes, restart), and anchor rotation announced on WatchTrust.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createPublicKey, X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import type { IdentityClient, TrustBundleMessage } from '../proto/identity.js';
import type { RunningControlPlane } from '../src/control/control-plane.js';
import { openCa } from '../src/control/identity/ca.js';
import { newLogger } from '../src/lib/log.js';
import { newKeyAndCsr } from '../src/proxy/identity/csr.js';
import { startTestControlPlane } from './support/control-plane.js';
import { eventually } from './support/eventually.js';
import { certify, identityClient, newCsr, uriSanOf } from './support/identity.js';

const BOOKS = 'spiffe://weft.local/ns/default/sa/books';
const AUTHORS = 'spiffe://weft.local/ns/default/sa/authors';
const SERVER_ID = 'spiffe://weft.local/ns/weft/sa/identity';

const log = newLogger('error', { component: 'control' }, () => {});
let dir: string;
let control: RunningControlPlane;
const clients: IdentityClient[] = [];

const bundlePem = () => control.identity.ca.bundle().anchorPems.join('');
const client = (cert?: { keyPem: string; chainPem: string }) => {
  const c = identityClient(control.addresses.identity, bundlePem(), SERVER_ID, cert);
  clients.push(c);
  return c;
};
const mint = (identity: string) => control.identity.tokens.mint(identity).token;
const codeOf = async (p: Promise<unknown>) => {
  try {
    await p;
  } catch (err) {
    return (err as grpc.ServiceError).code;
  }
  return grpc.status.OK;
};

/** A workload that bootstrapped: its key, its chain (leaf + issuer) and the response. */
async function bootstrap(identity: string) {
  const { keyPem, csr } = await newCsr(identity);
  const res = await certify(client(), { identity, token: mint(identity), certificateSigningRequest: csr });
  return { keyPem, chainPem: res.leafPem + res.intermediatePems.join(''), res };
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'weft-identity-'));
  control = await startTestControlPlane({
    stateDir: dir,
    log,
    env: { WEFT_CONTROL_IDENTITY_LEAF_TTL: '1h' },
  });
});

after(async () => {
  for (const c of clients) c.close();
  await control?.shutdown();
  await rm(dir, { recursive: true, force: true });
});

describe('Certify with a bootstrap token', () => {
  it('issues a leaf with the URI SAN that chains to the anchor (node:crypto and openssl verify)', async () => {
    const { res } = await bootstrap(BOOKS);
    const leaf = new X509Certificate(res.leafPem);
    const issuer = new X509Certificate(res.intermediatePems[0]);
    const anchor = new X509Certificate(bundlePem());
    assert.equal(uriSanOf(res.leafPem), BOOKS);
    assert.equal(leaf.subjectAltName, `URI:${BOOKS}`);
    assert.ok(leaf.checkIssued(issuer) && leaf.verify(issuer.publicKey), 'leaf signed by the issuer');
    assert.ok(issuer.checkIssued(anchor) && issuer.verify(anchor.publicKey), 'issuer signed by the anchor');
    assert.equal(leaf.ca, false);
    assert.deepEqual(leaf.keyUsage, ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
    const lifeMs = new Date(leaf.validTo).getTime() - Date.now();
    assert.ok(lifeMs > 59 * 60_000 && lifeMs <= 3_600_000, `leaf lives 1h (${lifeMs} ms left)`);
    assert.equal(res.validUntilUnixMs, new Date(leaf.validTo).getTime());
    assert.deepEqual(res.trust.anchorPems, control.identity.ca.bundle().anchorPems);
    assert.equal(res.trust.trustDomain, 'weft.local');

    await writeFile(join(dir, 'leaf.pem'), res.leafPem);
    await writeFile(join(dir, 'issuer.pem'), res.intermediatePems.join(''));
    const { stdout } = await promisify(execFile)('openssl', [
      'verify',
      '-CAfile',
      join(dir, 'identity', 'trust-bundle.pem'),
      '-untrusted',
      join(dir, 'issuer.pem'),
      '-purpose',
      'sslclient',
      join(dir, 'leaf.pem'),
    ]);
    assert.match(stdout, /leaf\.pem: OK/);
  });

  it("accepts the proxy's own CSR (src/proxy/identity/csr.ts)", async () => {
    const { csrDer } = await newKeyAndCsr(BOOKS);
    const res = await certify(client(), {
      identity: BOOKS,
      token: mint(BOOKS),
      certificateSigningRequest: csrDer,
    });
    assert.equal(uriSanOf(res.leafPem), BOOKS);
  });

  it('refuses a token used twice with UNAUTHENTICATED', async () => {
    const token = mint(BOOKS);
    const c = client();
    await certify(c, { identity: BOOKS, token, certificateSigningRequest: (await newCsr(BOOKS)).csr });
    const again = certify(c, {
      identity: BOOKS,
      token,
      certificateSigningRequest: (await newCsr(BOOKS)).csr,
    });
    assert.equal(await codeOf(again), grpc.status.UNAUTHENTICATED);
  });

  it('certifies again when a spent token comes back with the same CSR (a lost response), for nobody else', async () => {
    const token = mint(BOOKS);
    const c = client();
    const { csr } = await newCsr(BOOKS);
    const first = await certify(c, { identity: BOOKS, token, certificateSigningRequest: csr });
    const retried = await certify(c, { identity: BOOKS, token, certificateSigningRequest: csr });
    assert.equal(uriSanOf(retried.leafPem), BOOKS);
    assert.equal(
      new X509Certificate(retried.leafPem).publicKey.export({ type: 'spki', format: 'der' }).toString('hex'),
      new X509Certificate(first.leafPem).publicKey.export({ type: 'spki', format: 'der' }).toString('hex'),
    );
    const stolen = { identity: BOOKS, token, certificateSigningRequest: (await newCsr(BOOKS)).csr };
    assert.equal(await codeOf(certify(c, stolen)), grpc.status.UNAUTHENTICATED);
  });

  it('refuses an unknown token with UNAUTHENTICATED', async () => {
    const req = {
      identity: BOOKS,
      token: 'not-a-token',
      certificateSigningRequest: (await newCsr(BOOKS)).csr,
    };
    assert.equal(await codeOf(certify(client(), req)), grpc.status.UNAUTHENTICATED);
  });

  it('refuses a books token asking for authors with PERMISSION_DENIED', async () => {
    const req = {
      identity: AUTHORS,
      token: mint(BOOKS),
      certificateSigningRequest: (await newCsr(AUTHORS)).csr,
    };
    assert.equal(await codeOf(certify(client(), req)), grpc.status.PERMISSION_DENIED);
  });

  it('refuses bad CSRs with INVALID_ARGUMENT, without spending the token', async () => {
    const token = mint(BOOKS);
    const c = client();
    const bad = [
      Buffer.from('not a csr'),
      (await newCsr(AUTHORS)).csr, // names another identity than asked for
      (await newCsr(BOOKS, { curve: 'P-384' })).csr,
      (
        await newCsr(BOOKS, {
          sans: [
            { type: 'url', value: BOOKS },
            { type: 'dns', value: 'books' },
          ],
        })
      ).csr,
      (await newCsr(BOOKS, { sans: [{ type: 'dns', value: 'books' }] })).csr,
    ];
    const tampered = Buffer.from((await newCsr(BOOKS)).csr);
    tampered[tampered.length - 80] ^= 1; // inside the signed part or the signature
    bad.push(tampered);
    for (const [i, csr] of bad.entries())
      assert.equal(
        await codeOf(certify(c, { identity: BOOKS, token, certificateSigningRequest: csr })),
        grpc.status.INVALID_ARGUMENT,
        `bad CSR #${i}`,
      );
    const foreign = 'spiffe://other.domain/ns/default/sa/books';
    const req = { identity: foreign, token, certificateSigningRequest: (await newCsr(foreign)).csr };
    assert.equal(await codeOf(certify(c, req)), grpc.status.INVALID_ARGUMENT, 'another trust domain');
    await certify(c, { identity: BOOKS, token, certificateSigningRequest: (await newCsr(BOOKS)).csr });
  });
});

describe('Certify as a renewal (client certificate, no token)', () => {
  it('renews the identity of the client certificate', async () => {
    const first = await bootstrap(BOOKS);
    const renew = await newCsr(BOOKS);
    const res = await certify(client(first), { identity: BOOKS, certificateSigningRequest: renew.csr });
    assert.equal(uriSanOf(res.leafPem), BOOKS);
    assert.notEqual(res.leafPem, first.res.leafPem);
  });

  it('refuses another identity than the client certificate (PERMISSION_DENIED)', async () => {
    const books = await bootstrap(BOOKS);
    const req = { identity: AUTHORS, certificateSigningRequest: (await newCsr(AUTHORS)).csr };
    assert.equal(await codeOf(certify(client(books), req)), grpc.status.PERMISSION_DENIED);
  });

  it('refuses a renewal with a certificate from another CA (UNAUTHENTICATED)', async () => {
    const otherDir = await mkdtemp(join(tmpdir(), 'weft-identity-other-'));
    const other = await openCa({ stateDir: otherDir, trustDomain: 'weft.local', leafTtlMs: 3_600_000 }, log);
    try {
      const { keyPem } = await newCsr(BOOKS);
      const spki = createPublicKey(keyPem).export({ type: 'spki', format: 'der' });
      const forged = other.issue(spki, BOOKS);
      const req = { identity: BOOKS, certificateSigningRequest: (await newCsr(BOOKS)).csr };
      const chainPem = forged.leafPem + forged.intermediatePems.join('');
      assert.equal(await codeOf(certify(client({ keyPem, chainPem }), req)), grpc.status.UNAUTHENTICATED);
    } finally {
      other.close();
      await rm(otherDir, { recursive: true, force: true });
    }
  });

  it('refuses a renewal without a client certificate (UNAUTHENTICATED)', async () => {
    const req = { identity: BOOKS, certificateSigningRequest: (await newCsr(BOOKS)).csr };
    assert.equal(await codeOf(certify(client(), req)), grpc.status.UNAUTHENTICATED);
  });
});

describe('the CA on disk', () => {
  it('keeps keys readable by their owner only', async () => {
    assert.equal((await stat(join(dir, 'identity'))).mode & 0o777, 0o700);
    assert.equal((await stat(join(dir, 'identity', 'ca.json'))).mode & 0o777, 0o600);
    const saved = JSON.parse(await readFile(join(dir, 'identity', 'ca.json'), 'utf8'));
    assert.match(saved.issuer.keyPem, /BEGIN PRIVATE KEY/);
  });
});

describe('anchor rotation', () => {
  it('adds an anchor, re-issues the issuer, removes the old anchor; WatchTrust sees each step', async () => {
    const ca = control.identity.ca;
    const seen: TrustBundleMessage[] = [];
    const watch = client().WatchTrust({});
    watch.on('data', (b: TrustBundleMessage) => seen.push(b));
    watch.on('error', () => {});
    await eventually(() => assert.equal(seen.length, 1));
    const old = ca.status().anchors[0].fingerprint;
    assert.equal(seen[0].anchorPems.length, 1);

    const added = await ca.addAnchor();
    await eventually(() => assert.equal(seen.length, 2));
    assert.equal(seen[1].anchorPems.length, 2);
    assert.equal(seen[1].issuerGeneration, seen[0].issuerGeneration);

    await assert.rejects(ca.removeAnchor(old), { code: 'WEFT_ERR_IDENTITY_CA_CONFLICT' });
    const issuer = await ca.reissueIssuer();
    assert.equal(issuer.anchorFingerprint, added.fingerprint);
    await eventually(() => assert.equal(seen.length, 3));
    assert.notEqual(seen[2].issuerGeneration, seen[1].issuerGeneration);

    // Leaves now chain to the new anchor, and the server presents a certificate from the new issuer.
    const renewedServer = await eventually(async () => {
      const { res } = await bootstrap(BOOKS);
      const anchor = new X509Certificate(seen[2].anchorPems[1]);
      assert.ok(new X509Certificate(res.intermediatePems[0]).verify(anchor.publicKey));
      return res;
    });
    assert.ok(renewedServer);

    await ca.removeAnchor(old);
    await eventually(() => assert.equal(seen.length, 4));
    assert.deepEqual(seen[3].anchorPems, [seen[2].anchorPems[1]]);
    await assert.rejects(ca.removeAnchor(added.fingerprint), { code: 'WEFT_ERR_IDENTITY_CA_CONFLICT' });
    await assert.rejects(ca.removeAnchor('deadbeefdeadbeef'), { code: 'WEFT_ERR_IDENTITY_ANCHOR_NOT_FOUND' });
    watch.cancel();

    // A client trusting only the new anchor reaches the server (its certificate was re-issued).
    await eventually(() => bootstrap(BOOKS));
  });

  it('keeps the same CA across a restart', async () => {
    const before = control.identity.ca.status();
    await control.shutdown();
    control = await startTestControlPlane({ stateDir: dir, log });
    const now = control.identity.ca.status();
    assert.deepEqual(now.anchors, before.anchors);
    assert.deepEqual(now.issuer, before.issuer);
    const { res } = await bootstrap(BOOKS);
    assert.equal(uriSanOf(res.leafPem), BOOKS);
  });
});
