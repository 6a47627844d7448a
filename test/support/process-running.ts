/** Whether a process still runs, for tests that check what a SIGKILL left behind. */
import { readFileSync } from 'node:fs';
import { isProcessAlive } from '../../src/lib/process-alive.js';

/**
 * True while `pid` names a process that has not exited. Unlike isProcessAlive, a zombie (exited,
 * not yet reaped) counts as gone: an orphan is reaped by PID 1 whenever PID 1 gets round to it,
 * which on some machines is a second later, and that delay is no process of ours still running.
 */
export function isProcessRunning(pid: number): boolean {
  if (!isProcessAlive(pid)) return false;
  try {
    // /proc/PID/stat: "pid (comm) S ...": the state follows the last ')' (comm may hold one).
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false; // gone between the two checks
  }
}
