import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { WEFT_BIN } from '../../test/support/paths.js';

/** A module loader hook that appends every URL it resolves to $WEFT_TEST_LOADED (hooks run off-thread). */
const HOOKS = `import { appendFileSync } from 'node:fs';
export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  appendFileSync(process.env.WEFT_TEST_LOADED, r.url + '\\n');
  return r;
}`;
const REGISTER = `data:text/javascript,${encodeURIComponent(
  `import { register } from 'node:module'; register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(HOOKS)}`)});`,
)}`;

const dir = mkdtempSync(join(tmpdir(), 'weft-cli-lazy-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** The module URLs `weft ARGS` loads (it exits at once: help). */
function modulesLoadedBy(args: string[]): string[] {
  const file = join(dir, `${args.join('-')}.txt`);
  const run = spawnSync(process.execPath, ['--import', REGISTER, WEFT_BIN, ...args], {
    env: { ...process.env, WEFT_TEST_LOADED: file },
    encoding: 'utf8',
    timeout: 30_000,
  });
  assert.equal(run.status, 0, run.stderr);
  return readFileSync(file, 'utf8').trim().split('\n');
}

describe('weft (lazy subcommands)', () => {
  it('`weft proxy` loads the proxy, and nothing of the control plane, the store or other commands', () => {
    const loaded = modulesLoadedBy(['proxy', '--help']);
    assert.ok(
      loaded.some((u) => u.endsWith('/dist/src/proxy/proxy.js')),
      'the proxy is loaded',
    );
    const unwanted = loaded.filter((u) =>
      /\/dist\/src\/(control|store|platform)\/|\/dist\/src\/cli\/(?!main\.js|proxy\.js)|@peculiar|reflect-metadata|\/yaml\//.test(
        u,
      ),
    );
    assert.deepEqual(unwanted, []);
  });

  it('help lists every command', () => {
    const run = spawnSync(process.execPath, [WEFT_BIN, '--help'], { encoding: 'utf8', timeout: 30_000 });
    for (const name of ['proxy', 'demo', 'control', 'up', 'down', 'run', 'apply', 'get', 'delete'])
      assert.match(run.stdout, new RegExp(`^  ${name} `, 'm'));
    for (const name of ['identity', 'policy', 'check'])
      assert.match(run.stdout, new RegExp(`^  ${name}\\b`, 'm'));
  });
});
