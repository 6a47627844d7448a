import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { newCsr } from '../../../test/support/identity.js';
import { checkCsr, MAX_CSR_BYTES } from './csr-check.js';

const BOOKS = 'spiffe://weft.local/ns/default/sa/books';
const BAD = { code: 'WEFT_ERR_IDENTITY_BAD_CSR' };

describe('CSR checks', () => {
  it('accept one URI SAN equal to the identity and return the key', async () => {
    const { csr } = await newCsr(BOOKS);
    const checked = checkCsr(csr, BOOKS);
    assert.equal(checked.uri, BOOKS);
    assert.equal(checked.spki.length, 91);
  });

  it('refuse empty, oversized and truncated requests', async () => {
    const { csr } = await newCsr(BOOKS);
    assert.throws(() => checkCsr(Buffer.alloc(0), BOOKS), BAD);
    assert.throws(() => checkCsr(Buffer.alloc(MAX_CSR_BYTES + 1, 0x30), BOOKS), BAD);
    for (let n = 1; n < csr.length; n += 7) assert.throws(() => checkCsr(csr.subarray(0, n), BOOKS), BAD);
  });

  it('refuse a key that is not a P-256 point', async () => {
    const { csr } = await newCsr(BOOKS);
    const header = Buffer.from('3059301306072a8648ce3d020106082a8648ce3d03010703420004', 'hex');
    const bad = Buffer.from(csr);
    bad[bad.indexOf(header) + header.length + 5] ^= 0xff; // x changes: off the curve, or the signature fails
    assert.throws(() => checkCsr(bad, BOOKS), BAD);
  });

  it('refuse every single-byte corruption (never accept, never throw anything else)', async () => {
    const { csr } = await newCsr(BOOKS);
    for (let i = 0; i < csr.length; i++) {
      const bad = Buffer.from(csr);
      bad[i] ^= 0x01;
      try {
        checkCsr(bad, BOOKS);
      } catch (err) {
        assert.equal((err as { code?: string }).code, BAD.code, `byte ${i}: ${(err as Error).message}`);
        continue;
      }
      assert.fail(`byte ${i} flipped and the CSR was accepted`);
    }
  });
});
