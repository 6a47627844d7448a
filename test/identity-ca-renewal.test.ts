/**
 * A generated CA re-issues its issuer when fewer than 30 days remain, but only when a trust anchor
 * outlives the issuer: an issuer never outlives its anchor, so re-issuing under an anchor that
 * ends first would give no longer-lived issuer, and doing it at every check would make every proxy
 * renew every hour. Then the CA keeps its issuer and says that the anchor must be rotated.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { openCa } from '../src/control/identity/ca.js';
import { caDir, writeCaFile } from '../src/control/identity/ca-files.js';
import { newLogger } from '../src/lib/log.js';
import { newTestCa } from './support/test-ca.js';

const DAY_MS = 86_400_000;
const dirs: string[] = [];

afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

/** A state directory holding a generated CA whose root and issuer expire when given. */
async function stateWithCa(rootDays: number, issuerDays: number): Promise<string> {
  const stateDir = await mkdtemp(join(tmpdir(), 'weft-ca-renewal-'));
  dirs.push(stateDir);
  const ca = await newTestCa('Renewal', {
    rootNotAfter: new Date(Date.now() + rootDays * DAY_MS),
    issuerNotAfter: new Date(Date.now() + issuerDays * DAY_MS),
  });
  await writeCaFile(
    await caDir(stateDir),
    {
      anchors: [{ certPem: ca.root.certPem, keyPem: ca.root.keyPem }],
      issuer: { certPem: ca.intermediate.certPem, keyPem: ca.intermediate.keyPem },
      generation: 1,
    },
    ca.root.certPem,
  );
  return stateDir;
}

/** Opens the CA in `stateDir` and returns its status and the error lines it logged. */
async function open(stateDir: string) {
  const errors: string[] = [];
  const log = newLogger('error', {}, (line) => errors.push(line));
  const ca = await openCa({ stateDir, trustDomain: 'weft.local', leafTtlMs: 3_600_000 }, log);
  try {
    return { status: ca.status(), errors };
  } finally {
    ca.close();
  }
}

describe('issuer renewal of a generated CA', () => {
  it('re-issues an issuer with fewer than 30 days left when the anchor outlives it', async () => {
    const { status, errors } = await open(await stateWithCa(365, 20));
    assert.equal(status.issuer.generation, '2');
    assert.ok(Date.parse(status.issuer.notAfter) > Date.now() + 60 * DAY_MS, status.issuer.notAfter);
    assert.deepEqual(errors, []);
  });

  it('keeps the issuer and asks for an anchor rotation when no anchor outlives it', async () => {
    const stateDir = await stateWithCa(20, 20);
    const first = await open(stateDir);
    assert.equal(first.status.issuer.generation, '1');
    assert.equal(first.errors.length, 1, first.errors.join('\n'));
    assert.match(first.errors[0], /rotate the trust anchor/);
    // Opening again (or the next periodic check) changes nothing either.
    assert.equal((await open(stateDir)).status.issuer.generation, '1');
  });

  it('leaves an issuer with more than 30 days alone', async () => {
    const { status, errors } = await open(await stateWithCa(365, 60));
    assert.equal(status.issuer.generation, '1');
    assert.deepEqual(errors, []);
  });
});
