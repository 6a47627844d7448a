/** Where the demo's files are, from either the compiled (dist/demo) or the source tree (demo/). */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findRepoRoot } from '../src/lib/repo-root.js';

/** The repository root (the directory holding bin/weft.js). */
export const REPO_ROOT: string = findRepoRoot(dirname(fileURLToPath(import.meta.url)));
export const WEFT_BIN: string = join(REPO_ROOT, 'bin', 'weft.js');
/** Preloaded into each `weft run` child: it gets SIGTERM when the demo's stdin pipe to it closes. */
export const PARENT_WATCH: string = join(REPO_ROOT, 'dist', 'src', 'platform', 'local', 'parent-watch.js');
/** Compiled demo apps: `dist/demo/apps/<name>.js`. */
export const APPS_DIR: string = join(REPO_ROOT, 'dist', 'demo', 'apps');
/** .proto files are read from the source tree (tsc does not copy them to dist/). */
export const AUTHORS_PROTO: string = join(REPO_ROOT, 'demo', 'proto', 'authors.proto');

/** The Service ports the demo declares (virtual: each replica's app port is chosen by `weft run`). */
export const SERVICE_PORTS = { web: 7001, books: 7002, authors: 7003 } as const;
