/**
 * Stops the app's process group when `weft run` dies, even by SIGKILL (DESIGN.md §8: a dead
 * launcher leaves nothing running).
 *
 * Why this design: Node has no PR_SET_PDEATHSIG, and a SIGKILLed process runs no code, so the
 * only death notice that always arrives is a pipe closing. The proxy already watches such a pipe
 * (parent-watch.ts), but making it the app's killer too would tie the app's cleanup to the proxy's
 * health: a proxy that crashed, or was killed with `weft run`, would leave the app orphaned. So the
 * app gets its own watcher: a `/bin/sh` (about 1 MB, no Node start-up cost) in its own process
 * group, ignoring the job-control signals a terminal or a group kill might send it, whose stdin is
 * a pipe from `weft run`. When the pipe closes it sends SIGTERM to the app's process group (the app
 * is a group leader, so a shell-wrapped app's children go too), waits up to `graceMs` for the
 * group to empty, then SIGKILLs what is left, and exits. `weft run` closes the pipe itself when it
 * is done, so the same sweep removes whatever a finished app left behind in its group.
 *
 * The watchdog learns the group id as an argument; a group id cannot be reused while any member of
 * the group lives, so the kill reaches only the app's processes (after the group is gone the id
 * could in principle be reused, but the sweep runs within milliseconds of the app's exit).
 */
import { type ChildProcess, spawn } from 'node:child_process';

/** SIGTERM to the group, up to GRACE_STEPS × 0.1 s for it to empty, then SIGKILL. */
const WATCHDOG_SCRIPT = [
  "trap '' INT HUP TERM QUIT TSTP TTIN TTOU",
  'read -r _ || :',
  'kill -TERM -"$0" 2>/dev/null || exit 0',
  'i=0',
  'while [ "$i" -lt "$1" ] && kill -0 -"$0" 2>/dev/null; do sleep 0.1; i=$((i + 1)); done',
  'kill -KILL -"$0" 2>/dev/null',
  'exit 0',
].join('\n');

/** Default time the app's group gets between SIGTERM and SIGKILL once `weft run` is gone. */
export const WATCHDOG_GRACE_MS = 1000;

export interface AppWatchdog {
  /** The watchdog's own pid (for logs and tests). */
  readonly pid: number | undefined;
  /** Closes the pipe: the watchdog sweeps the group now and exits. Idempotent. */
  release(): void;
}

/**
 * Starts the watchdog of process group `pgid`. It never keeps `weft run` alive (unref'd), and its
 * failure to start is not fatal: `weft run` still stops the app on every exit path it survives.
 */
export function startAppWatchdog(pgid: number, graceMs = WATCHDOG_GRACE_MS): AppWatchdog {
  const steps = String(Math.max(0, Math.ceil(graceMs / 100)));
  const child: ChildProcess = spawn('/bin/sh', ['-c', WATCHDOG_SCRIPT, String(pgid), steps], {
    detached: true,
    stdio: ['pipe', 'ignore', 'ignore'],
  });
  child.on('error', () => {});
  child.stdin?.on('error', () => {});
  child.unref();
  // The pipe handle must not keep `weft run`'s event loop alive either.
  (child.stdin as unknown as { unref?: () => void } | null)?.unref?.();
  return {
    pid: child.pid,
    release: () => void child.stdin?.end(),
  };
}
