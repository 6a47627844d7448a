import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { newBootstrapTokens } from './bootstrap-tokens.js';

const BOOKS = 'spiffe://weft.local/ns/default/sa/books';
const AUTHORS = 'spiffe://weft.local/ns/default/sa/authors';
const KEY = 'a'.repeat(64);
const OTHER_KEY = 'b'.repeat(64);

describe('bootstrap tokens', () => {
  it('are 32 random bytes, valid once for their identity', async () => {
    const tokens = newBootstrapTokens();
    const { token } = tokens.mint(BOOKS);
    assert.equal(Buffer.from(token, 'base64url').length, 32);
    await tokens.validate(token, BOOKS, KEY);
    await assert.rejects(tokens.validate(token, BOOKS, OTHER_KEY), {
      code: 'WEFT_ERR_IDENTITY_UNAUTHENTICATED',
    });
  });

  it('refuse another identity and are spent by the attempt', async () => {
    const tokens = newBootstrapTokens();
    const { token } = tokens.mint(BOOKS);
    await assert.rejects(tokens.validate(token, AUTHORS, KEY), { code: 'WEFT_ERR_IDENTITY_DENIED' });
    await assert.rejects(tokens.validate(token, BOOKS, KEY), { code: 'WEFT_ERR_IDENTITY_UNAUTHENTICATED' });
  });

  it('can be presented again by the key that spent them, until they expire (a lost response)', async () => {
    let now = 1_000_000;
    const tokens = newBootstrapTokens({ ttlMs: 600_000, now: () => now });
    const { token } = tokens.mint(BOOKS);
    await tokens.validate(token, BOOKS, KEY);
    await tokens.validate(token, BOOKS, KEY);
    assert.equal(tokens.outstanding(), 0, 'a spent token is not outstanding');
    await assert.rejects(tokens.validate(token, BOOKS, OTHER_KEY), {
      code: 'WEFT_ERR_IDENTITY_UNAUTHENTICATED',
    });
    await assert.rejects(tokens.validate(token, AUTHORS, KEY), { code: 'WEFT_ERR_IDENTITY_UNAUTHENTICATED' });
    now += 600_000;
    await assert.rejects(tokens.validate(token, BOOKS, KEY), { code: 'WEFT_ERR_IDENTITY_UNAUTHENTICATED' });
  });

  it('spent by a refused identity are not bound to the key that tried', async () => {
    const tokens = newBootstrapTokens();
    const { token } = tokens.mint(BOOKS);
    await assert.rejects(tokens.validate(token, AUTHORS, KEY), { code: 'WEFT_ERR_IDENTITY_DENIED' });
    await assert.rejects(tokens.validate(token, AUTHORS, KEY), { code: 'WEFT_ERR_IDENTITY_UNAUTHENTICATED' });
  });

  it('expire after their lifetime', async () => {
    let now = 1_000_000;
    const tokens = newBootstrapTokens({ ttlMs: 600_000, now: () => now });
    const { token, expiresAt } = tokens.mint(BOOKS);
    assert.equal(expiresAt.getTime(), 1_600_000);
    now += 600_000;
    await assert.rejects(tokens.validate(token, BOOKS, KEY), /expired/);
    assert.equal(tokens.outstanding(), 0);
  });

  it('are bounded in number', () => {
    const tokens = newBootstrapTokens({ maxOutstanding: 2 });
    tokens.mint(BOOKS);
    tokens.mint(BOOKS);
    assert.throws(() => tokens.mint(BOOKS), { code: 'WEFT_ERR_IDENTITY_TOO_MANY_TOKENS' });
  });
});
