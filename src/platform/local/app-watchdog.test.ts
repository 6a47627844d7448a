import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { eventually } from '../../../test/support/eventually.js';
import { isProcessRunning } from '../../../test/support/process-running.js';
import { startAppWatchdog } from './app-watchdog.js';

const started: ChildProcess[] = [];

/** Whether process `pid` ignores every signal number in `signals` (its /proc SigIgn mask). */
function ignores(pid: number, signals: number[]): boolean {
  const m = /^SigIgn:\s*([0-9a-f]+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  const mask = BigInt(`0x${m?.[1] ?? '0'}`);
  return signals.every((s) => (mask >> BigInt(s - 1)) & 1n);
}

/** A shell-wrapped "app" leading its own group: the shell and its `sleep` child; `script` runs first. */
function groupLeader(script = ''): { leader: ChildProcess; childPid: () => Promise<number> } {
  const leader = spawn('/bin/sh', ['-c', `${script} sleep 60 & echo $!; wait`], {
    detached: true,
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  started.push(leader);
  let out = '';
  leader.stdout?.on('data', (c) => (out += c));
  return {
    leader,
    childPid: () => eventually(() => Number(/^(\d+)\n/.exec(out)?.[1] ?? assert.fail('no pid yet'))),
  };
}

after(() => {
  for (const c of started)
    try {
      process.kill(-(c.pid as number), 'SIGKILL');
    } catch {}
});

describe('app watchdog', () => {
  it('stops the whole group when released, and shrugs off the signals a terminal sends it', async () => {
    const { leader, childPid } = groupLeader();
    const child = await childPid();
    const dog = startAppWatchdog(leader.pid as number);
    assert.ok(dog.pid && isProcessRunning(dog.pid));
    await eventually(() => assert.ok(ignores(dog.pid as number, [1, 2, 15]), 'traps not installed yet'));
    for (const s of ['SIGINT', 'SIGHUP', 'SIGTERM'] as const) process.kill(dog.pid, s);
    assert.ok(isProcessRunning(leader.pid as number) && isProcessRunning(child), 'nothing stopped yet');
    dog.release();
    await eventually(() => {
      assert.ok(!isProcessRunning(child), 'the sleep child still runs');
      assert.ok(!isProcessRunning(dog.pid as number), 'the watchdog still runs');
    });
  });

  it('SIGKILLs a group that ignores SIGTERM once the grace is over', async () => {
    const { leader, childPid } = groupLeader("trap '' TERM;");
    const child = await childPid();
    const dog = startAppWatchdog(leader.pid as number, 300);
    dog.release();
    const from = performance.now();
    await eventually(() => assert.ok(!isProcessRunning(leader.pid as number)), { intervalMs: 10 });
    const ms = performance.now() - from;
    assert.ok(ms >= 250, `the TERM-ignoring shell went after ${ms} ms, before the grace`);
    // One group SIGKILL reaches both, but each dies when the scheduler next runs it: on a busy
    // machine the shell can be seen gone a moment before its sleep child (one CI run did).
    await eventually(() => assert.ok(!isProcessRunning(child), 'the sleep child still runs'), {
      timeoutMs: 2000,
    });
  });
});
