/**
 * The embedded store's on-disk state: one snapshot file, `state.json`, holding every resource,
 * the store's resourceVersion and the bounded history of recent changes (for watches that resume
 * from a resourceVersion, also across restarts and processes).
 *
 * Why one snapshot file rather than a file per kind or a snapshot plus an append-only log: one
 * atomic rename commits the resources, the resourceVersion and the history together, so there
 * is no cross-file consistency to recover and no log to replay or compact. The price is that
 * every write rewrites the whole file, which at one host's scale (hundreds to a few thousand
 * small resources) costs less than the fsyncs that any durable design pays anyway.
 *
 * Crash safety: a write goes to a uniquely named temporary file, which is fsynced, renamed over
 * `state.json`, and then the directory is fsynced. A crash at any point leaves either the old or
 * the new complete file; temporary files left behind are never read and are removed by the
 * next writer.
 */
import { randomUUID } from 'node:crypto';
import { open, readdir, readFile, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { deepFreeze, isResourceKind, type Resource } from './resource.js';
import { StateCorruptError } from './store-error.js';
import type { Change } from './store-watchers.js';

export const STATE_FILE = 'state.json';
const STATE_TEMP_PREFIX = 'state.json.tmp-';
const FORMAT = 1;

/** The whole store at one resourceVersion. Frozen; a change makes a new State. */
export interface State {
  readonly resourceVersion: number;
  /** Every change with a larger resourceVersion is in `history` (contiguous, oldest first). */
  readonly historyStart: number;
  readonly objects: ReadonlyMap<string, Resource>;
  readonly history: readonly Change[];
}

export const EMPTY_STATE: State = Object.freeze({
  resourceVersion: 0,
  historyStart: 0,
  objects: new Map(),
  history: [],
});

/** The map key of a resource. */
export function objectKey(kind: string, namespace: string, name: string): string {
  return `${kind}/${namespace}/${name}`;
}

/** `state` with `change` applied (object stored or removed), keeping at most `historyLimit` changes. */
export function withChange(state: State, change: Change, historyLimit: number): State {
  const objects = new Map(state.objects);
  const { kind, metadata } = change.object;
  const key = objectKey(kind, metadata.namespace, metadata.name);
  if (change.type === 'DELETED') objects.delete(key);
  else objects.set(key, change.object);
  const history = [...state.history, change];
  const dropped = history.splice(0, Math.max(0, history.length - historyLimit));
  const historyStart = dropped.length > 0 ? dropped[dropped.length - 1].rv : state.historyStart;
  return { resourceVersion: change.rv, historyStart, objects, history };
}

/** Reads `dir`'s state; an absent file is the empty state. Throws StateCorruptError. */
export async function readState(dir: string): Promise<State> {
  const path = join(dir, STATE_FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return EMPTY_STATE;
    throw new StateCorruptError(path, err);
  }
  try {
    return decode(JSON.parse(text));
  } catch (err) {
    throw new StateCorruptError(path, err);
  }
}

/** A cheap fingerprint of the state file: changes whenever a new state is renamed into place. */
export async function stateFingerprint(dir: string): Promise<string> {
  try {
    const s = await stat(join(dir, STATE_FILE), { bigint: true });
    return `${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'absent';
    throw err;
  }
}

/** Durably replaces `dir`'s state (see the file comment). Call only while holding the dir lock. */
export async function writeState(dir: string, state: State): Promise<void> {
  const temp = join(dir, `${STATE_TEMP_PREFIX}${process.pid}-${randomUUID()}`);
  const file = await open(temp, 'wx', 0o600);
  try {
    await file.writeFile(encode(state));
    await file.sync();
  } finally {
    await file.close();
  }
  await rename(temp, join(dir, STATE_FILE));
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}

/** Removes temporary state files of interrupted writes. Call only while holding the dir lock. */
export async function removeStateTemps(dir: string): Promise<void> {
  for (const name of await readdir(dir))
    if (name.startsWith(STATE_TEMP_PREFIX)) await unlink(join(dir, name)).catch(() => {});
}

interface StateFileV1 {
  format: number;
  resourceVersion: number;
  historyStart: number;
  resources: Resource[];
  history: { type: Change['type']; object: Resource }[];
}

function encode(state: State): string {
  const body: StateFileV1 = {
    format: FORMAT,
    resourceVersion: state.resourceVersion,
    historyStart: state.historyStart,
    resources: [...state.objects.keys()].sort().map((k) => state.objects.get(k)!),
    history: state.history.map((c) => ({ type: c.type, object: c.object })),
  };
  return `${JSON.stringify(body)}\n`;
}

function decode(raw: unknown): State {
  const f = raw as Partial<StateFileV1> | null;
  if (f?.format !== FORMAT)
    throw new Error(`unknown format ${JSON.stringify(f?.format)} (expected ${FORMAT})`);
  if (!Number.isSafeInteger(f.resourceVersion) || !Number.isSafeInteger(f.historyStart))
    throw new Error('resourceVersion and historyStart must be integers');
  if (!Array.isArray(f.resources) || !Array.isArray(f.history))
    throw new Error('resources and history must be lists');
  const objects = new Map<string, Resource>();
  for (const r of f.resources) {
    checkStored(r);
    objects.set(objectKey(r.kind, r.metadata.namespace, r.metadata.name), deepFreeze(r));
  }
  const history = f.history.map((c): Change => {
    checkStored(c.object);
    return { type: c.type, object: deepFreeze(c.object), rv: Number(c.object.metadata.resourceVersion) };
  });
  return deepFreeze({ resourceVersion: f.resourceVersion!, historyStart: f.historyStart!, objects, history });
}

function checkStored(r: Resource): void {
  if (
    !isResourceKind(r?.kind) ||
    typeof r.metadata?.name !== 'string' ||
    typeof r.metadata.namespace !== 'string'
  )
    throw new Error(`malformed stored resource ${JSON.stringify(r).slice(0, 200)}`);
}
