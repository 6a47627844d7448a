/** Finding the repository root from a module, in the compiled (dist/) or the source layout. */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

/**
 * The nearest directory at or above `start` holding bin/weft.js and package.json. Walking up
 * rather than counting levels lets dist/ and source files (and `node --import tsx`) agree.
 */
export function findRepoRoot(start: string): string {
  for (let dir = start; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'bin', 'weft.js')) && existsSync(join(dir, 'package.json'))) return dir;
    if (dirname(dir) === dir) throw new Error(`no repository root (bin/weft.js) above ${start}`);
  }
}
