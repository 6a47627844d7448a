import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { describe, it } from 'node:test';
import { checkCsr } from '../../control/identity/csr-check.js';
import { newKeyAndCsr } from './csr.js';
// An independent parser (the CSR is built with our own DER encoder): @peculiar/x509.
import { x509 } from './x509-setup.js';

const ID = 'spiffe://weft.local/ns/default/sa/books';

describe('newKeyAndCsr', () => {
  it('makes an ECDSA P-256 key and a CSR with exactly one URI SAN, signed by that key', async () => {
    const { keyPem, csrDer } = await newKeyAndCsr(ID);
    const key = createPrivateKey(keyPem);
    assert.equal(key.asymmetricKeyType, 'ec');
    assert.equal(key.asymmetricKeyDetails?.namedCurve, 'prime256v1');

    const csr = new x509.Pkcs10CertificateRequest(new Uint8Array(csrDer));
    assert.equal(await csr.verify(), true, 'CSR signature verifies');
    const san = csr.getExtension('2.5.29.17');
    assert.ok(san, 'CSR carries a subjectAltName extension');
    const names = new x509.SubjectAlternativeNameExtension(san.rawData).names.toJSON();
    assert.deepEqual(names, [{ type: 'url', value: ID }]);

    // The CSR's public key is the key's own.
    const csrSpki = Buffer.from(csr.publicKey.rawData);
    const keySpki = createPublicKey(key).export({ type: 'spki', format: 'der' });
    assert.deepEqual(csrSpki, keySpki);
  });

  it("passes the control plane's CSR check, which returns the key and the identity", async () => {
    const { keyPem, csrDer } = await newKeyAndCsr(ID);
    const checked = checkCsr(csrDer, ID);
    assert.equal(checked.uri, ID);
    assert.deepEqual(checked.spki, createPublicKey(keyPem).export({ type: 'spki', format: 'der' }));
    assert.throws(() => checkCsr(csrDer, `${ID}-other`), { code: 'WEFT_ERR_IDENTITY_BAD_CSR' });
  });

  it('has an empty subject, version 1 and no attribute other than the extension request', async () => {
    const csr = new x509.Pkcs10CertificateRequest(new Uint8Array((await newKeyAndCsr(ID)).csrDer));
    assert.equal(csr.subject, '');
    assert.deepEqual(
      [...csr.attributes].map((a) => a.type),
      ['1.2.840.113549.1.9.14'],
    );
    assert.deepEqual(
      [...csr.extensions].map((e) => [e.type, e.critical]),
      [['2.5.29.17', false]],
    );
    assert.equal(csr.signatureAlgorithm.name, 'ECDSA');
  });

  it('makes a new key every time', async () => {
    const a = await newKeyAndCsr(ID);
    const b = await newKeyAndCsr(ID);
    assert.notEqual(a.keyPem, b.keyPem);
  });
});
