/**
 * Golden files: expected outputs of pure render functions, kept in test/fixtures/golden/. Run the
 * tests with WEFT_UPDATE_GOLDEN=1 to (re)write them after an intended change, then review the diff.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { fixturePath } from './paths.js';

/** Asserts that `actual` equals the golden file `name` (or writes it under WEFT_UPDATE_GOLDEN=1). */
export function assertGolden(name: string, actual: string): void {
  const path = fixturePath(`golden/${name}`);
  if (process.env.WEFT_UPDATE_GOLDEN === '1') {
    writeFileSync(path, actual);
    return;
  }
  let expected: string;
  try {
    expected = readFileSync(path, 'utf8');
  } catch {
    assert.fail(`golden file ${path} is missing; run with WEFT_UPDATE_GOLDEN=1 to write it`);
  }
  assert.equal(actual, expected, `output differs from ${path} (WEFT_UPDATE_GOLDEN=1 rewrites it)`);
}
