/**
 * The mesh's certificate authority (DESIGN.md §6, docs/identity.md): trust anchors (self-signed
 * roots, several during a rotation) and one issuer (intermediate) that signs workload leaves.
 *
 * Generated on first start into `<state>/identity/` and loaded from there afterwards (a restart
 * keeps the same CA), or read from user-supplied files. Rotation is three operator steps, each
 * committed to disk before it is visible and announced to `onChange` listeners: add an anchor,
 * re-issue the issuer under the newest anchor (the generation changes), remove the old anchor
 * (refused while it signs the issuer). Mutations run one at a time; issuance never waits for them.
 */
import type { Logger } from '../../lib/log.js';
import { caDir, readCaFile, readSuppliedFile, removeCaTemps, writeCaFile } from './ca-files.js';
import {
  type CertInfo,
  certInfo,
  ISSUER_RENEW_BEFORE_MS,
  isSignedBy,
  type KeyedCert,
  keyedCert,
  leafSignerOf,
  newAnchor,
  newIssuer,
  splitPemBundle,
} from './ca-material.js';
import { AnchorNotFoundError, CaConflictError, CaExternalError, CaFilesError } from './identity-errors.js';
import { certificatePem, type LeafSigner, signLeaf } from './leaf-signer.js';

/** Clock skew a fresh leaf tolerates: it is valid from this long before issuance (at most 10% of its life). */
export const LEAF_BACKDATE_MS = 60_000;
/** How often the CA checks whether its issuer needs re-issuing. */
const ISSUER_CHECK_INTERVAL_MS = 3_600_000;

export interface SuppliedCaFiles {
  readonly anchorsFile: string;
  readonly issuerCertFile: string;
  readonly issuerKeyFile: string;
}

export interface CaOptions {
  readonly stateDir: string;
  readonly trustDomain: string;
  readonly leafTtlMs: number;
  /** Use these files instead of a CA generated in the state directory. */
  readonly supplied?: SuppliedCaFiles;
}

/** What peers need to verify certificates: TrustBundle of proto/identity.proto. */
export interface TrustBundle {
  readonly anchorPems: readonly string[];
  readonly issuerGeneration: string;
  readonly trustDomain: string;
}

export interface IssuedLeaf {
  readonly leafPem: string;
  /** The issuer, PEM (the chain up to, not including, the anchor). */
  readonly intermediatePems: readonly string[];
  readonly notBefore: Date;
  readonly notAfter: Date;
}

export interface CertSummary {
  readonly fingerprint: string;
  readonly subject: string;
  readonly notBefore: string;
  readonly notAfter: string;
}

export interface CaStatus {
  readonly trustDomain: string;
  /** `generated`: Weft made it and can rotate it; `supplied`: read from the operator's files. */
  readonly source: 'generated' | 'supplied';
  readonly leafTtlMs: number;
  readonly anchors: readonly (CertSummary & { readonly signsIssuer: boolean })[];
  readonly issuer: CertSummary & { readonly anchorFingerprint: string; readonly generation: string };
}

export interface CertificateAuthority {
  readonly trustDomain: string;
  readonly leafTtlMs: number;
  bundle(): TrustBundle;
  status(): CaStatus;
  /** Signs a leaf for `uri` over `spki` (checked by the caller); synchronous and fast. */
  issue(spki: Buffer, uri: string, ttlMs?: number): IssuedLeaf;
  /** Generates a new anchor and adds it to the bundle. */
  addAnchor(): Promise<CertSummary>;
  /** Re-issues the issuer under the newest anchor; the generation changes. */
  reissueIssuer(): Promise<CaStatus['issuer']>;
  /** Removes the anchor `fingerprint` (full, or a unique prefix of at least 8 hex digits). */
  removeAnchor(fingerprint: string): Promise<CertSummary>;
  /** Calls `listener` after every committed change (never synchronously from the call that made it). */
  onChange(listener: () => void): () => void;
  /** Stops the issuer-expiry timer. */
  close(): void;
}

interface CaState {
  readonly anchors: readonly (CertInfo | KeyedCert)[];
  readonly issuer: KeyedCert;
  readonly issuerAnchor: CertInfo;
  readonly generation: number;
  readonly signer: LeafSigner;
  readonly bundle: TrustBundle;
}

/** Loads (or on first start generates and saves) the CA. Throws CaFilesError on unusable files. */
export async function openCa(opts: CaOptions, log: Logger): Promise<CertificateAuthority> {
  const supplied = opts.supplied !== undefined;
  const dir = supplied ? '' : await caDir(opts.stateDir);
  let state = supplied ? await loadSupplied(opts) : await loadOrCreate(dir, opts.trustDomain, log);
  const listeners = new Set<() => void>();
  let queue: Promise<unknown> = Promise.resolve();
  const exclusive = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = queue.then(fn);
    queue = run.catch(() => {});
    return run;
  };
  const commit = async (next: CaState, what: string) => {
    await writeCaFile(dir, toFile(next), next.bundle.anchorPems.join(''));
    state = next;
    log.info(`identity CA: ${what}`, { generation: next.generation, anchors: next.anchors.length });
    for (const l of listeners) queueMicrotask(l);
  };
  const rotatable = (what: string) => {
    if (supplied) throw new CaExternalError(what);
  };
  const reissue = async (): Promise<CaStatus['issuer']> => {
    rotatable('re-issue the issuer');
    const newest = [...state.anchors].sort((a, b) => a.notBefore.getTime() - b.notBefore.getTime()).at(-1);
    const generation = state.generation + 1;
    const issuer = await newIssuer(newest as KeyedCert, opts.trustDomain, generation);
    await commit(assemble(state.anchors, issuer, generation, opts.trustDomain), 'issuer re-issued');
    return statusOf(state, opts, supplied).issuer;
  };
  const renewIfNeeded = () =>
    exclusive(async () => {
      if (supplied || state.issuer.notAfter.getTime() - Date.now() > ISSUER_RENEW_BEFORE_MS) return;
      // An issuer never outlives its anchor: when the newest anchor ends no later than the
      // current issuer, a new issuer would be no better (and re-issuing every check would make
      // every proxy renew every hour). Only rotating the trust anchor helps.
      const newestAnchorEnd = Math.max(...state.anchors.map((a) => a.notAfter.getTime()));
      if (newestAnchorEnd <= state.issuer.notAfter.getTime()) {
        log.error(
          'identity CA: the issuer expires soon and no trust anchor outlives it; rotate the trust anchor',
          {
            issuerNotAfter: state.issuer.notAfter.toISOString(),
          },
        );
        return;
      }
      await reissue();
    }).catch((err: unknown) => log.error('identity CA: issuer renewal failed', { error: String(err) }));
  await renewIfNeeded();
  const timer = setInterval(renewIfNeeded, ISSUER_CHECK_INTERVAL_MS);
  timer.unref();

  return {
    trustDomain: opts.trustDomain,
    leafTtlMs: opts.leafTtlMs,
    bundle: () => state.bundle,
    status: () => statusOf(state, opts, supplied),
    issue: (spki, uri, ttlMs = opts.leafTtlMs) => {
      const now = Date.now();
      // Certificates hold whole seconds: round here so notAfter is exactly what the leaf says.
      const notBefore = wholeSeconds(now - Math.min(LEAF_BACKDATE_MS, Math.floor(ttlMs / 10)));
      const notAfter = wholeSeconds(Math.min(now + ttlMs, state.issuer.notAfter.getTime()));
      const der = signLeaf(state.signer, { spki, uri, notBefore, notAfter });
      return { leafPem: certificatePem(der), intermediatePems: [state.issuer.pem], notBefore, notAfter };
    },
    addAnchor: () =>
      exclusive(async () => {
        rotatable('add an anchor');
        const anchor = await newAnchor(opts.trustDomain);
        await commit(
          assemble([...state.anchors, anchor], state.issuer, state.generation, opts.trustDomain),
          'anchor added',
        );
        return summary(anchor);
      }),
    reissueIssuer: () => exclusive(reissue),
    removeAnchor: (fingerprint) =>
      exclusive(async () => {
        rotatable('remove an anchor');
        const anchor = findAnchor(state.anchors, fingerprint);
        if (anchor === state.issuerAnchor)
          throw new CaConflictError(
            `anchor ${anchor.fingerprint} signs the current issuer; re-issue the issuer under another anchor first`,
          );
        const rest = state.anchors.filter((a) => a !== anchor);
        await commit(assemble(rest, state.issuer, state.generation, opts.trustDomain), 'anchor removed');
        return summary(anchor);
      }),
    onChange: (listener) => {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    close: () => clearInterval(timer),
  };
}

async function loadOrCreate(dir: string, trustDomain: string, log: Logger): Promise<CaState> {
  await removeCaTemps(dir);
  const saved = await readCaFile(dir);
  if (saved) {
    try {
      const anchors = saved.anchors.map((a) => keyedCert(a.certPem, a.keyPem));
      return assemble(
        anchors,
        keyedCert(saved.issuer.certPem, saved.issuer.keyPem),
        saved.generation,
        trustDomain,
      );
    } catch (err) {
      if (err instanceof CaFilesError) throw err;
      throw new CaFilesError(dir, (err as Error).message, err);
    }
  }
  const anchor = await newAnchor(trustDomain);
  const state = assemble([anchor], await newIssuer(anchor, trustDomain, 1), 1, trustDomain);
  await writeCaFile(dir, toFile(state), state.bundle.anchorPems.join(''));
  log.info('identity CA generated', { dir, anchor: anchor.fingerprint, issuer: state.issuer.fingerprint });
  return state;
}

async function loadSupplied(opts: CaOptions): Promise<CaState> {
  const files = opts.supplied as SuppliedCaFiles;
  const inFile = <T>(path: string, fn: () => T): T => {
    try {
      return fn();
    } catch (err) {
      throw new CaFilesError(path, (err as Error).message, err);
    }
  };
  const pems = splitPemBundle(await readSuppliedFile(files.anchorsFile));
  if (pems.length === 0) throw new CaFilesError(files.anchorsFile, 'no PEM certificate in it');
  const anchors = inFile(files.anchorsFile, () => pems.map(certInfo));
  const certPem = await readSuppliedFile(files.issuerCertFile);
  const keyPem = await readSuppliedFile(files.issuerKeyFile);
  const issuer = inFile(files.issuerKeyFile, () => keyedCert(certPem, keyPem));
  const state = inFile(files.issuerCertFile, () => assemble(anchors, issuer, 0, opts.trustDomain));
  // Supplied issuers have no counter: their fingerprint changes exactly when they do.
  return { ...state, bundle: { ...state.bundle, issuerGeneration: issuer.fingerprint.slice(0, 16) } };
}

/** Checks that the parts fit together and derives what issuance needs; throws a plain Error (callers add where). */
function assemble(
  anchors: readonly (CertInfo | KeyedCert)[],
  issuer: KeyedCert,
  generation: number,
  trustDomain: string,
): CaState {
  const issuerAnchor = anchors.find((a) => isSignedBy(issuer, a));
  if (!issuerAnchor) throw new Error('the issuer is not signed by any trust anchor');
  return {
    anchors,
    issuer,
    issuerAnchor,
    generation,
    signer: leafSignerOf(issuer),
    bundle: Object.freeze({
      anchorPems: Object.freeze(anchors.map((a) => a.pem)),
      issuerGeneration: String(generation),
      trustDomain,
    }),
  };
}

function wholeSeconds(ms: number): Date {
  return new Date(Math.floor(ms / 1000) * 1000);
}

function findAnchor(anchors: readonly CertInfo[], fingerprint: string): CertInfo {
  const want = fingerprint.replaceAll(':', '').toLowerCase();
  const matches = want.length >= 8 ? anchors.filter((a) => a.fingerprint.startsWith(want)) : [];
  if (matches.length !== 1) throw new AnchorNotFoundError(fingerprint);
  return matches[0];
}

function toFile(state: CaState) {
  return {
    anchors: state.anchors.map((a) => ({ certPem: a.pem, keyPem: (a as KeyedCert).keyPem })),
    issuer: { certPem: state.issuer.pem, keyPem: state.issuer.keyPem },
    generation: state.generation,
  };
}

function summary(c: CertInfo): CertSummary {
  return {
    fingerprint: c.fingerprint,
    subject: c.subject,
    notBefore: c.notBefore.toISOString(),
    notAfter: c.notAfter.toISOString(),
  };
}

function statusOf(state: CaState, opts: CaOptions, supplied: boolean): CaStatus {
  return {
    trustDomain: opts.trustDomain,
    source: supplied ? 'supplied' : 'generated',
    leafTtlMs: opts.leafTtlMs,
    anchors: state.anchors.map((a) => ({ ...summary(a), signsIssuer: a === state.issuerAnchor })),
    issuer: {
      ...summary(state.issuer),
      anchorFingerprint: state.issuerAnchor.fingerprint,
      generation: state.bundle.issuerGeneration,
    },
  };
}
