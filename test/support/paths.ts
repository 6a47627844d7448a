/** Where the repository and its test fixtures are, from either the compiled or the source tree. */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findRepoRoot } from '../../src/lib/repo-root.js';

/** Absolute path of the repository root (the directory holding bin/weft.js). */
export const REPO_ROOT: string = findRepoRoot(dirname(fileURLToPath(import.meta.url)));

/** Absolute path of the `weft` entry point the tests spawn. */
export const WEFT_BIN: string = join(REPO_ROOT, 'bin', 'weft.js');

/** Absolute path of a source fixture (`test/fixtures/<name>`); fixtures are not copied to dist/. */
export function fixturePath(name: string): string {
  return join(REPO_ROOT, 'test', 'fixtures', name);
}
