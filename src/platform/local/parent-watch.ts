/**
 * Preloaded (`node --import`) into the proxy that `weft run` starts: the proxy's stdin is a pipe
 * from `weft run`, and when it ends (`weft run` exited, even by SIGKILL) the proxy gets SIGTERM
 * and drains, so a dead launcher never leaves its sidecar running. The pipe is unref'd: it never
 * keeps the proxy alive by itself.
 */
const stdin = process.stdin as NodeJS.ReadStream & { unref?: () => void };
const stop = () => process.kill(process.pid, 'SIGTERM');
stdin.once('end', stop);
stdin.once('error', stop);
stdin.resume();
stdin.unref?.();
