import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { children, oid, seq, tlv, uint } from './der.js';

describe('DER', () => {
  it('encodes OIDs, integers and lengths', () => {
    assert.equal(oid('1.2.840.10045.4.3.2').toString('hex'), '06082a8648ce3d040302');
    assert.equal(uint(Buffer.from([0, 0, 0x80])).toString('hex'), '02020080');
    assert.equal(uint(Buffer.from([0x01])).toString('hex'), '020101');
    assert.equal(tlv(0x04, Buffer.alloc(200)).subarray(0, 3).toString('hex'), '0481c8');
    assert.equal(tlv(0x04, Buffer.alloc(300)).subarray(0, 4).toString('hex'), '0482012c');
  });

  it('reads back what it wrote', () => {
    const inner = [uint(Buffer.from([5])), oid('2.5.29.17'), tlv(0x04, Buffer.alloc(300, 7))];
    const [top] = children(seq(...inner));
    assert.deepEqual(
      children(top.value).map((e) => e.der),
      inner,
    );
  });

  it('throws on truncated or unsupported input, never reads out of range', () => {
    for (const bad of ['30', '3005020101', '3084000000010000', '1f0100', '3080'])
      assert.throws(() => children(Buffer.from(bad, 'hex')), /DER/, bad);
    for (let i = 0; i < 2000; i++) {
      try {
        const walk = (b: Buffer): void => {
          for (const e of children(b)) if (e.tag & 0x20) walk(e.value);
        };
        walk(randomBytes(1 + (i % 64)));
      } catch (err) {
        assert.match((err as Error).message, /DER/);
      }
    }
  });
});
