/**
 * `openssl s_client` against a real proxy's inbound port with ALPN weft.mesh/1 (issue 4): the
 * certificate carries the right SPIFFE ID and chains to the control plane's anchor; a client
 * with a mesh certificate is served (and the app learns its identity); a client with no
 * certificate, a self-signed one, one from another CA, or only TLS 1.2 is refused, counted, and
 * no request reaches the app (under TLS 1.3 a refused client first looks connected, then closed).
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { RunningControlPlane } from '../src/control/control-plane.js';
import type { EchoBody, HttpApp } from './support/apps.js';
import { eventually } from './support/eventually.js';
import { certify, identityClient, newCsr } from './support/identity.js';
import {
  firstPemCertificate,
  type MeshedInbound,
  openssl,
  spiffe,
  startMeshedInbound,
} from './support/meshed-proxy.js';
import { sampleSum } from './support/prom-text.js';
import type { ProxyProcess } from './support/proxy-process.js';
import { newTestCa, selfSignedLeaf } from './support/test-ca.js';

const BOOKS = spiffe('books');
const TESTER = spiffe('tester');
const IDENTITY_SERVICE = 'spiffe://weft.local/ns/weft/sa/identity';

let mesh: MeshedInbound | undefined;
let pki: string;
let control: RunningControlPlane;
let httpApp: HttpApp;
let inBooks: ProxyProcess | undefined;

before(async () => {
  mesh = await startMeshedInbound('weft-mtls-openssl-');
  ({ control, httpApp, inBooks } = mesh);
  pki = mesh.dir;
  const anchorsPem = await (
    await fetch(`http://${control.addresses.api}/api/v1/identity/trust-bundle`)
  ).text();
  await writeFile(join(pki, 'anchors.pem'), anchorsPem);
  // A real client certificate from the identity service.
  const { keyPem, csr } = await newCsr(TESTER);
  const token = (await (
    await fetch(`http://${control.addresses.api}/api/v1/identity/tokens`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ identity: TESTER }),
    })
  ).json()) as { token: string };
  const client = identityClient(control.addresses.identity, anchorsPem, IDENTITY_SERVICE);
  try {
    const res = await certify(client, {
      identity: TESTER,
      token: token.token,
      certificateSigningRequest: csr,
    });
    await writeFile(join(pki, 'good.key'), keyPem);
    await writeFile(join(pki, 'good.pem'), res.leafPem);
    await writeFile(join(pki, 'good-chain.pem'), res.intermediatePems.join(''));
  } finally {
    client.close();
  }
  const self = await selfSignedLeaf(TESTER);
  await writeFile(join(pki, 'self.key'), self.keyPem);
  await writeFile(join(pki, 'self.pem'), self.chainPem.join(''));
  const foreign = await (await newTestCa('Other')).issue(TESTER);
  await writeFile(join(pki, 'foreign.key'), foreign.keyPem);
  await writeFile(join(pki, 'foreign.pem'), foreign.chainPem[0]!);
  await writeFile(join(pki, 'foreign-chain.pem'), foreign.chainPem.slice(1).join(''));
});

after(async () => {
  await mesh?.close();
});

describe('openssl s_client against the inbound port', { timeout: 120_000 }, () => {
  const REQUEST = 'GET /from-openssl HTTP/1.1\r\nHost: books:7002\r\nConnection: close\r\n\r\n';
  const sClient = (args: string[]) =>
    openssl(
      ['s_client', '-connect', inBooks!.inbound!, '-alpn', 'weft.mesh/1', '-ign_eof', ...args],
      REQUEST,
    );

  it('sees the SPIFFE ID chained to the anchor, and with a mesh certificate is served', async () => {
    const before = httpApp.requestCount();
    const r = await sClient([
      '-showcerts',
      '-verify_return_error',
      '-CAfile',
      join(pki, 'anchors.pem'),
      '-cert',
      join(pki, 'good.pem'),
      '-key',
      join(pki, 'good.key'),
      '-cert_chain',
      join(pki, 'good-chain.pem'),
    ]);
    assert.equal(r.code, 0, `${r.stderr}\n${r.stdout}`);
    assert.match(r.stdout, /Verify return code: 0 \(ok\)/);
    assert.match(r.stdout, /Protocol\s*: TLSv1\.3/);
    assert.match(r.stdout, /ALPN protocol: weft\.mesh\/1/);
    const leaf = new X509Certificate(firstPemCertificate(r.stdout)!);
    assert.equal(leaf.subjectAltName, `URI:${BOOKS}`);
    // The request made it, with the client's verified identity.
    assert.match(r.stdout, /HTTP\/1\.1 200 OK/);
    const response = r.stdout.slice(r.stdout.indexOf('HTTP/1.1 200 OK'));
    const length = Number(/content-length: (\d+)/i.exec(response)?.[1]);
    const bodyAt = response.indexOf('\r\n\r\n') + 4;
    const echo = JSON.parse(response.slice(bodyAt, bodyAt + length)) as EchoBody;
    assert.equal(echo.headers['weft-client-id'], TESTER);
    assert.equal(httpApp.requestCount(), before + 1);
  });

  for (const [name, args] of [
    ['no client certificate', []],
    ['a self-signed certificate', ['-cert', 'self.pem', '-key', 'self.key']],
    [
      'a certificate from another CA',
      ['-cert', 'foreign.pem', '-key', 'foreign.key', '-cert_chain', 'foreign-chain.pem'],
    ],
    [
      'TLS 1.2 only (with a good certificate)',
      ['-tls1_2', '-cert', 'good.pem', '-key', 'good.key', '-cert_chain', 'good-chain.pem'],
    ],
  ] as const) {
    it(`refuses a client with ${name}: no request reaches the app`, async () => {
      const before = httpApp.requestCount();
      const refusedBefore = sampleSum(await inBooks!.metrics(), 'tcp_refused_total', {
        reason: 'tls_handshake',
      });
      const r = await sClient(args.map((a) => (a.startsWith('-') ? a : join(pki, a))));
      assert.doesNotMatch(r.stdout, /HTTP\/1\.1/, 'no HTTP response came back');
      assert.equal(httpApp.requestCount(), before);
      await eventually(async () =>
        assert.equal(
          sampleSum(await inBooks!.metrics(), 'tcp_refused_total', { reason: 'tls_handshake' }),
          refusedBefore + 1,
        ),
      );
    });
  }
});
