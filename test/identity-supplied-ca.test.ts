/**
 * A CA supplied by the operator (WEFT_CONTROL_IDENTITY_*_FILE), made here with openssl: leaves
 * chain to the supplied anchor, Weft refuses to rotate it, and files that do not fit together
 * stop the control plane at start with a clear error.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { newLogger } from '../src/lib/log.js';
import { startTestControlPlane } from './support/control-plane.js';
import { certify, identityClient, newCsr, uriSanOf } from './support/identity.js';

const openssl = (dir: string, ...args: string[]) => promisify(execFile)('openssl', args, { cwd: dir });
const BOOKS = 'spiffe://weft.local/ns/default/sa/books';
const log = newLogger('error', {}, () => {});
let dir: string;

/** A root and an intermediate made by openssl into `dir` (prefix names the files). */
async function opensslCa(prefix: string): Promise<void> {
  await writeFile(
    join(dir, 'ext.cnf'),
    '[v3_ca]\nbasicConstraints=critical,CA:true\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n',
  );
  await openssl(dir, 'ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${prefix}root.key`);
  await openssl(
    dir,
    'req',
    '-x509',
    '-new',
    '-key',
    `${prefix}root.key`,
    '-subj',
    `/CN=${prefix} root`,
    '-days',
    '30',
    '-out',
    `${prefix}root.pem`,
    '-addext',
    'basicConstraints=critical,CA:true',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  );
  await openssl(dir, 'ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${prefix}issuer.key`);
  await openssl(
    dir,
    'req',
    '-new',
    '-key',
    `${prefix}issuer.key`,
    '-subj',
    `/CN=${prefix} issuer`,
    '-out',
    `${prefix}issuer.csr`,
  );
  await openssl(
    dir,
    'x509',
    '-req',
    '-in',
    `${prefix}issuer.csr`,
    '-CA',
    `${prefix}root.pem`,
    '-CAkey',
    `${prefix}root.key`,
    '-CAcreateserial',
    '-days',
    '20',
    '-extfile',
    'ext.cnf',
    '-extensions',
    'v3_ca',
    '-out',
    `${prefix}issuer.pem`,
  );
}

const filesEnv = (anchors: string, issuer: string) => ({
  WEFT_CONTROL_IDENTITY_ANCHORS_FILE: join(dir, `${anchors}root.pem`),
  WEFT_CONTROL_IDENTITY_ISSUER_CERT_FILE: join(dir, `${issuer}issuer.pem`),
  WEFT_CONTROL_IDENTITY_ISSUER_KEY_FILE: join(dir, `${issuer}issuer.key`),
});

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'weft-supplied-ca-'));
  await opensslCa('a-');
  await opensslCa('b-');
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('a supplied CA', () => {
  it('issues leaves that chain to the supplied anchor and is never rotated by Weft', async () => {
    const control = await startTestControlPlane({
      stateDir: join(dir, 'state'),
      log,
      env: filesEnv('a-', 'a-'),
    });
    const client = identityClient(
      control.addresses.identity,
      control.identity.ca.bundle().anchorPems.join(''),
      'spiffe://weft.local/ns/weft/sa/identity',
    );
    try {
      const status = control.identity.ca.status();
      assert.equal(status.source, 'supplied');
      assert.match(status.anchors[0].subject, /a- root/);
      const token = control.identity.tokens.mint(BOOKS).token;
      const res = await certify(client, {
        identity: BOOKS,
        token,
        certificateSigningRequest: (await newCsr(BOOKS)).csr,
      });
      assert.equal(uriSanOf(res.leafPem), BOOKS);
      const root = new X509Certificate(control.identity.ca.bundle().anchorPems[0]);
      assert.ok(new X509Certificate(res.intermediatePems[0]).verify(root.publicKey));
      await assert.rejects(control.identity.ca.addAnchor(), { code: 'WEFT_ERR_IDENTITY_CA_EXTERNAL' });
      await assert.rejects(control.identity.ca.reissueIssuer(), { code: 'WEFT_ERR_IDENTITY_CA_EXTERNAL' });
    } finally {
      client.close();
      await control.shutdown();
    }
  });

  it('refuses to start with an issuer that no supplied anchor signed', async () => {
    await assert.rejects(
      startTestControlPlane({ stateDir: join(dir, 'state2'), log, env: filesEnv('a-', 'b-') }),
      { code: 'WEFT_ERR_IDENTITY_CA_FILES', message: /not signed by any trust anchor/ },
    );
  });

  it('refuses to start with only some of the files', async () => {
    const { WEFT_CONTROL_IDENTITY_ANCHORS_FILE } = filesEnv('a-', 'a-');
    await assert.rejects(
      startTestControlPlane({
        stateDir: join(dir, 'state3'),
        log,
        env: { WEFT_CONTROL_IDENTITY_ANCHORS_FILE },
      }),
      { code: 'WEFT_ERR_CONFIG' },
    );
  });
});
