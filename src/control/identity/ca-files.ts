/**
 * Where the CA lives on disk. A generated CA is one file, `<state>/identity/ca.json` (mode 0600,
 * in a 0700 directory): every anchor with its key, the issuer with its key, and the issuer
 * generation. One file means one atomic rename commits a rotation step whole, as the store does
 * (src/store/store-embedded-state.ts): temp file, fsync, rename, fsync of the directory.
 * `trust-bundle.pem` beside it is a convenience copy of the anchors (for `openssl verify` and
 * people), rewritten after each commit and never read back.
 *
 * A user-supplied CA is read from three PEM files and never written.
 */
import { randomUUID } from 'node:crypto';
import { chmod, mkdir, open, readdir, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { CaFilesError } from './identity-errors.js';

export const CA_DIR = 'identity';
export const CA_FILE = 'ca.json';
export const BUNDLE_FILE = 'trust-bundle.pem';
const TEMP_MARK = '.tmp-';
const FORMAT = 1;

/** The persisted CA: PEM text only, so the file is readable with standard tools. */
export interface CaFileState {
  readonly anchors: readonly { readonly certPem: string; readonly keyPem: string }[];
  readonly issuer: { readonly certPem: string; readonly keyPem: string };
  /** Increases by one each time the issuer is re-issued. */
  readonly generation: number;
}

/** `<state>/identity`, created 0700 (and tightened to 0700 if it existed looser). */
export async function caDir(stateDir: string): Promise<string> {
  const dir = join(stateDir, CA_DIR);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
  return dir;
}

/** The saved CA, or undefined when there is none yet. Throws CaFilesError when it is unreadable. */
export async function readCaFile(dir: string): Promise<CaFileState | undefined> {
  const path = join(dir, CA_FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new CaFilesError(path, 'cannot read', err);
  }
  try {
    const raw = JSON.parse(text) as CaFileState & { format?: number };
    if (raw.format !== FORMAT) throw new Error(`unknown format ${raw.format}`);
    if (!Array.isArray(raw.anchors) || raw.anchors.length === 0 || !raw.issuer?.certPem)
      throw new Error('no anchors or no issuer');
    return { anchors: raw.anchors, issuer: raw.issuer, generation: Number(raw.generation) };
  } catch (err) {
    throw new CaFilesError(path, `corrupt (${(err as Error).message})`, err);
  }
}

/** Durably replaces the saved CA, then rewrites the bundle copy. */
export async function writeCaFile(dir: string, state: CaFileState, bundlePem: string): Promise<void> {
  await writeAtomically(dir, CA_FILE, `${JSON.stringify({ format: FORMAT, ...state }, null, 2)}\n`, 0o600);
  await writeAtomically(dir, BUNDLE_FILE, bundlePem, 0o644);
}

/** Removes temporary files of interrupted writes (the control plane holds the state lock). */
export async function removeCaTemps(dir: string): Promise<void> {
  for (const name of await readdir(dir))
    if (name.includes(TEMP_MARK)) await unlink(join(dir, name)).catch(() => {});
}

/** The text of a user-supplied file; CaFilesError when it cannot be read. */
export async function readSuppliedFile(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new CaFilesError(path, `cannot read (${(err as NodeJS.ErrnoException).code ?? 'error'})`, err);
  }
}

async function writeAtomically(dir: string, name: string, text: string, mode: number): Promise<void> {
  const temp = join(dir, `${name}${TEMP_MARK}${process.pid}-${randomUUID()}`);
  const file = await open(temp, 'wx', mode);
  try {
    await file.writeFile(text);
    await file.sync();
  } finally {
    await file.close();
  }
  await rename(temp, join(dir, name));
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}
