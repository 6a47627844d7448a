/** Where the repository and its test fixtures are, from either the compiled or the source tree. */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function findRepoRoot(start: string): string {
  // Compiled files live in dist/test/support, sources in test/support: walk up to bin/weft.js
  // rather than counting levels, so both layouts (and `node --import tsx`) find the same root.
  for (let dir = start; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'bin', 'weft.js')) && existsSync(join(dir, 'package.json'))) return dir;
    if (dirname(dir) === dir) throw new Error(`no repository root (bin/weft.js) above ${start}`);
  }
}

/** Absolute path of the repository root (the directory holding bin/weft.js). */
export const REPO_ROOT: string = findRepoRoot(dirname(fileURLToPath(import.meta.url)));

/** Absolute path of the `weft` entry point the tests spawn. */
export const WEFT_BIN: string = join(REPO_ROOT, 'bin', 'weft.js');

/** Absolute path of a source fixture (`test/fixtures/<name>`); fixtures are not copied to dist/. */
export function fixturePath(name: string): string {
  return join(REPO_ROOT, 'test', 'fixtures', name);
}
