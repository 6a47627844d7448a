import { describe, it } from 'node:test';
import { assertGolden } from '../../test/support/golden.js';
import type { IdentityStatus } from '../control/api/api-identity.js';
import { renderIdentityStatus } from './identity.js';

const NOW = new Date('2026-11-26T10:00:00Z');

const status: IdentityStatus = {
  trustDomain: 'weft.local',
  source: 'generated',
  leafTtlMs: 86_400_000,
  identityAddr: '127.0.0.1:8080',
  tokensOutstanding: 1,
  certify: { ok: 12, UNAUTHENTICATED: 1 },
  anchors: [
    {
      fingerprint: '38870ff61430ac1e38870ff61430ac1e38870ff61430ac1e38870ff61430ac1e',
      subject: 'CN=weft.local trust anchor 2026-01-10T08:00:00.000Z, O=Weft',
      notBefore: '2026-01-10T07:59:00.000Z',
      notAfter: '2027-01-10T08:00:00.000Z',
      signsIssuer: false,
    },
    {
      fingerprint: '292cb87733c69927292cb87733c69927292cb87733c69927292cb87733c69927',
      subject: 'CN=weft.local trust anchor 2026-11-26T09:00:00.000Z, O=Weft',
      notBefore: '2026-11-26T08:59:00.000Z',
      notAfter: '2027-11-26T09:00:00.000Z',
      signsIssuer: true,
    },
  ],
  issuer: {
    fingerprint: 'be62b7d73415a57dbe62b7d73415a57dbe62b7d73415a57dbe62b7d73415a57d',
    subject: 'CN=weft.local issuer 2, O=Weft',
    notBefore: '2026-11-26T09:29:00.000Z',
    notAfter: '2027-02-24T09:30:00.000Z',
    anchorFingerprint: '292cb87733c69927292cb87733c69927292cb87733c69927292cb87733c69927',
    generation: '2',
  },
};

describe('weft identity status', () => {
  it('renders the CA for a person (mid-rotation: two anchors)', () => {
    assertGolden('identity-status.txt', renderIdentityStatus(status, NOW));
  });
});
