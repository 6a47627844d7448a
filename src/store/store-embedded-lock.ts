/**
 * The embedded store's cross-process write lock: a lock file created atomically (written under a
 * temporary name, then hard-linked into place, so it never exists half-written) holding the
 * owner's pid and a random token. A lock whose pid is no longer running is stale and is broken.
 *
 * Breaking is guarded by a second lock file so that two processes breaking the same stale lock
 * cannot remove a fresh one: under the guard, the lock is removed only if it still holds the
 * stale token. A process that dies inside the guard (a few system calls) leaves the guard behind;
 * it too is broken when its pid is gone, without a guard of its own — the one remaining (very
 * narrow) race, acceptable for one host. A reused pid makes a stale lock look alive; the writer
 * then fails after the lock timeout with an error naming the lock file.
 */
import { randomUUID } from 'node:crypto';
import { link, readdir, readFile, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { isProcessAlive } from '../lib/process-alive.js';
import { StoreLockedError } from './store-error.js';

const LOCK_FILE = 'state.lock';
const GUARD_FILE = 'state.lock.break';
const LOCK_TEMP_PREFIX = 'state.lock.tmp-';

/**
 * Runs `fn` holding the lock of `dir`, waiting (with jittered backoff up to 20 ms between
 * attempts) at most `timeoutMs` for another process to release it; then StoreLockedError.
 * The lock is released when `fn` settles.
 */
export async function withDirLock<T>(dir: string, timeoutMs: number, fn: () => Promise<T>): Promise<T> {
  const lockPath = join(dir, LOCK_FILE);
  const token = `${process.pid} ${randomUUID()}\n`;
  const deadline = Date.now() + timeoutMs;
  let delayMs = 1;
  for (;;) {
    if (await createExclusive(dir, lockPath, token)) break;
    const holder = await readHolder(lockPath);
    if (holder !== undefined && !isAlive(holder)) {
      await breakStale(dir, lockPath, holder);
      continue;
    }
    if (Date.now() > deadline) throw new StoreLockedError(lockPath, holder?.trim() ?? 'nobody', timeoutMs);
    await sleep(delayMs * (0.5 + Math.random()));
    delayMs = Math.min(delayMs * 2, 20);
  }
  try {
    return await fn();
  } finally {
    await unlink(lockPath).catch(() => {});
  }
}

/** Removes temporary lock files left behind by processes that are no longer running. */
export async function removeDeadLockTemps(dir: string): Promise<void> {
  for (const name of await readdir(dir)) {
    if (!name.startsWith(LOCK_TEMP_PREFIX)) continue;
    const pid = Number.parseInt(name.slice(LOCK_TEMP_PREFIX.length), 10);
    if (!isAlive(`${pid}`)) await unlink(join(dir, name)).catch(() => {});
  }
}

/** Creates `path` holding `content` if it does not exist; false if it does. */
async function createExclusive(dir: string, path: string, content: string): Promise<boolean> {
  const temp = join(dir, `${LOCK_TEMP_PREFIX}${process.pid}-${randomUUID()}`);
  await writeFile(temp, content, { flag: 'wx' });
  try {
    await link(temp, path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    await unlink(temp).catch(() => {});
  }
}

async function readHolder(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

async function breakStale(dir: string, lockPath: string, staleToken: string): Promise<void> {
  const guardPath = join(dir, GUARD_FILE);
  if (!(await createExclusive(dir, guardPath, `${process.pid} ${randomUUID()}\n`))) {
    const guard = await readHolder(guardPath);
    if (guard !== undefined && !isAlive(guard)) await unlink(guardPath).catch(() => {});
    else await sleep(2);
    return;
  }
  try {
    if ((await readHolder(lockPath)) === staleToken) await unlink(lockPath).catch(() => {});
  } finally {
    await unlink(guardPath).catch(() => {});
  }
}

/** Whether the process named by a lock token (`pid token`) may still be running. */
function isAlive(token: string): boolean {
  const pid = Number.parseInt(token, 10);
  return pid === process.pid || isProcessAlive(pid);
}
