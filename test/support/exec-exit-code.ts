/** The exit code of an execFile callback's error: a child killed by a signal or timeout is -1, never 0. */
export function execExitCode(err: (Error & { code?: unknown }) | null): number {
  if (!err) return 0;
  return typeof err.code === 'number' ? err.code : -1;
}
