/**
 * `weft up --detach` and `weft down` as a user runs them: the control plane starts in the
 * background with its state, pid and log in the state directory, answers the CLI through its
 * API, refuses a second start on the same state, and stops cleanly.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import { execExitCode } from './support/exec-exit-code.js';
import { WEFT_BIN } from './support/paths.js';

let state: string;

const upArgs = () => [
  'up',
  '--detach',
  '--state',
  state,
  '--destination-addr',
  '127.0.0.1:0',
  '--api-addr',
  '127.0.0.1:0',
  '--identity-addr',
  '127.0.0.1:0',
];

function weft(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile(process.execPath, [WEFT_BIN, ...args], { timeout: 30_000 }, (err, stdout, stderr) =>
      resolve({ code: execExitCode(err), stdout, stderr }),
    ),
  );
}

before(async () => {
  state = await mkdtemp(join(tmpdir(), 'weft-up-'));
});

after(async () => {
  const pidFile = join(state, 'control.pid');
  if (existsSync(pidFile)) {
    try {
      process.kill(Number(readFileSync(pidFile, 'utf8')), 'SIGKILL');
    } catch {}
  }
  await rm(state, { recursive: true, force: true });
});

it('up --detach starts a background control plane that the CLI reaches; down stops it', async () => {
  const up = await weft(upArgs());
  assert.equal(up.code, 0, up.stderr);
  const api = /API \(HTTP\/JSON\): +http:\/\/(127\.0\.0\.1:\d+)/.exec(up.stdout)?.[1];
  assert.ok(api, up.stdout);
  assert.match(up.stdout, /destination \(gRPC\): +127\.0\.0\.1:\d+/);
  const pid = Number(readFileSync(join(state, 'control.pid'), 'utf8'));
  assert.ok(Number.isInteger(pid) && pid > 0, `pid file holds ${pid}`);
  assert.doesNotThrow(() => process.kill(pid, 0), 'the control plane runs after `up` returned');

  const got = await weft(['get', 'services', '--api-addr', api]);
  assert.equal(got.code, 0, got.stderr);

  const again = await weft(upArgs());
  assert.equal(again.code, 1);
  assert.match(again.stderr, /already running/);

  const down = await weft(['down', '--state', state]);
  assert.equal(down.code, 0, down.stderr);
  assert.match(down.stdout, /stopped/);
  assert.throws(() => process.kill(pid, 0), 'the control plane is gone');
  assert.equal(existsSync(join(state, 'control.pid')), false);
  assert.match(readFileSync(join(state, 'control.log'), 'utf8'), /control plane shut down/);

  const downAgain = await weft(['down', '--state', state]);
  assert.equal(downAgain.code, 0);
  assert.match(downAgain.stdout, /no control plane is running/);
});
