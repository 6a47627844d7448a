/**
 * The identity service's own certificate (docs/identity.md): a leaf for
 * spiffe://<td>/ns/weft/sa/identity from the mesh's issuer, replaced at 70% of its lifetime
 * (here 5 s) for new handshakes while an open WatchTrust stream on an older connection goes on.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import tls from 'node:tls';
import type { IdentityClient, TrustBundleMessage } from '../proto/identity.js';
import type { RunningControlPlane } from '../src/control/control-plane.js';
import { newLogger } from '../src/lib/log.js';
import { startTestControlPlane } from './support/control-plane.js';
import { eventually } from './support/eventually.js';
import { identityClient, uriSanOf } from './support/identity.js';

const SERVER_ID = 'spiffe://weft.local/ns/weft/sa/identity';
let dir: string;
let control: RunningControlPlane;
let watcher: IdentityClient | undefined;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'weft-identity-server-cert-'));
  control = await startTestControlPlane({
    stateDir: dir,
    log: newLogger('error', {}, () => {}),
    env: { WEFT_CONTROL_IDENTITY_LEAF_TTL: '5s' },
  });
});

after(async () => {
  watcher?.close();
  await control?.shutdown();
  await rm(dir, { recursive: true, force: true });
});

/** The certificate the server presents to a new TLS handshake, verified against the anchors. */
function serverCertificate(): Promise<X509Certificate> {
  const [host, port] = control.addresses.identity.split(':');
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host,
      port: Number(port),
      ca: control.identity.ca.bundle().anchorPems.join(''),
      ALPNProtocols: ['h2'],
      checkServerIdentity: () => undefined, // checked below, by URI SAN
    });
    socket.once('secureConnect', () => {
      resolve(new X509Certificate(socket.getPeerCertificate().raw));
      socket.destroy();
    });
    socket.once('error', reject);
  });
}

it('presents a leaf for the identity service and replaces it before it expires, without dropping streams', async () => {
  const first = await serverCertificate();
  assert.equal(uriSanOf(first.toString()), SERVER_ID);
  const issuer = new X509Certificate(control.identity.ca.bundle().anchorPems[0]);
  assert.ok(!first.checkIssued(issuer), 'signed by the issuer, not the anchor directly');
  const lifeMs = new Date(first.validTo).getTime() - new Date(first.validFrom).getTime();
  assert.ok(lifeMs <= 6_000, `a 5 s leaf (+ backdating): ${lifeMs} ms`);

  watcher = identityClient(
    control.addresses.identity,
    control.identity.ca.bundle().anchorPems.join(''),
    SERVER_ID,
  );
  const stream = watcher.WatchTrust({});
  let ended = false;
  const seen: TrustBundleMessage[] = [];
  stream.on('data', (b: TrustBundleMessage) => seen.push(b));
  stream.on('error', () => (ended = true));
  stream.on('end', () => (ended = true));
  await eventually(() => assert.equal(seen.length, 1));

  const next = await eventually(
    async () => {
      const c = await serverCertificate();
      assert.notEqual(c.fingerprint256, first.fingerprint256, 'not replaced yet');
      return c;
    },
    { timeoutMs: 15_000, intervalMs: 250 },
  );
  assert.equal(uriSanOf(next.toString()), SERVER_ID);
  assert.ok(new Date(next.validTo).getTime() > new Date(first.validTo).getTime());
  // Issued (valid from, less 0.5 s backdating) before the first one expired: renewed, not lapsed.
  assert.ok(new Date(next.validFrom) < new Date(first.validTo), 'replaced before the old one expired');

  await control.identity.ca.addAnchor();
  await eventually(() => assert.equal(seen.length, 2));
  assert.equal(ended, false, 'the stream opened before the swap is still open');
});
