/**
 * The part every LocalIdentity shares: holds the current key, chain and trust anchors, checks
 * them, builds the TLS 1.3 server and client contexts once per change and tells listeners.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import tls from 'node:tls';
import { IdentityMaterialError, IdentityNotReadyError } from './identity-errors.js';
import type { IdentityMaterial, LeafInfo, LocalIdentity } from './local-identity.js';
import { certFingerprint } from './pem.js';

interface Held {
  readonly material: IdentityMaterial;
  readonly leaf: LeafInfo;
}

interface Contexts {
  readonly server: tls.SecureContext;
  readonly client: tls.SecureContext;
}

export class IdentityState implements LocalIdentity {
  #held: Held | null = null;
  #anchors: readonly string[] = Object.freeze([]);
  #contexts: Contexts | null = null;
  readonly #listeners = new Set<() => void>();
  readonly #ready: Promise<void>;
  #resolveReady!: () => void;
  #closed = false;
  /** Called by close(), for subclasses that run timers or streams. */
  protected onClose: () => void = () => {};

  constructor(readonly id: string) {
    this.#ready = new Promise((r) => (this.#resolveReady = r));
  }

  ready(): boolean {
    return this.#held !== null;
  }

  whenReady(): Promise<void> {
    return this.#ready;
  }

  serverContext(): tls.SecureContext {
    return this.#current().server;
  }

  clientContext(): tls.SecureContext {
    return this.#current().client;
  }

  trustAnchors(): readonly string[] {
    return this.#anchors;
  }

  certificate(): LeafInfo | null {
    return this.#held?.leaf ?? null;
  }

  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#listeners.clear();
    this.onClose();
  }

  /** The key and chain held now (for presenting the leaf to the identity service on renewal). */
  protected currentMaterial(): IdentityMaterial | null {
    return this.#held?.material ?? null;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Replaces the certificate (and, when given, the anchors) in one step. Throws
   * IdentityMaterialError, leaving the state unchanged, when the key does not match the leaf,
   * the leaf does not name this identity, or a PEM does not parse.
   */
  setCertificate(material: IdentityMaterial, anchors?: readonly string[]): void {
    const leaf = checkMaterial(this.id, material);
    const nextAnchors = anchors ? checkAnchors(anchors) : this.#anchors;
    const contexts = buildContexts(material, nextAnchors);
    this.#held = { material: { keyPem: material.keyPem, chainPem: [...material.chainPem] }, leaf };
    this.#anchors = nextAnchors;
    this.#contexts = contexts;
    this.#resolveReady();
    this.#changed();
  }

  /** Replaces the trust anchors; a no-op when they are the same set. Throws IdentityMaterialError. */
  setAnchors(anchors: readonly string[]): void {
    const next = checkAnchors(anchors);
    if (sameSet(next, this.#anchors)) return;
    this.#contexts = this.#held ? buildContexts(this.#held.material, next) : null;
    this.#anchors = next;
    this.#changed();
  }

  #current(): Contexts {
    if (!this.#contexts) throw new IdentityNotReadyError(this.id);
    return this.#contexts;
  }

  #changed(): void {
    for (const l of [...this.#listeners]) l();
  }
}

/** TLS 1.3 only, both ways: mesh connections never negotiate down. */
function buildContexts(material: IdentityMaterial, anchors: readonly string[]): Contexts {
  const options: tls.SecureContextOptions = {
    key: material.keyPem,
    cert: material.chainPem.join(''),
    ca: anchors.length > 0 ? [...anchors] : undefined,
    minVersion: 'TLSv1.3',
    maxVersion: 'TLSv1.3',
  };
  try {
    return { server: tls.createSecureContext(options), client: tls.createSecureContext(options) };
  } catch (err) {
    throw new IdentityMaterialError(`TLS context: ${(err as Error).message}`, err);
  }
}

function checkMaterial(id: string, material: IdentityMaterial): LeafInfo {
  if (material.chainPem.length === 0) throw new IdentityMaterialError('empty certificate chain');
  let leaf: X509Certificate;
  let issuer: X509Certificate | undefined;
  try {
    leaf = new X509Certificate(material.chainPem[0] as string);
    issuer = material.chainPem[1] ? new X509Certificate(material.chainPem[1]) : undefined;
  } catch (err) {
    throw new IdentityMaterialError('certificate chain does not parse', err);
  }
  let key: ReturnType<typeof createPrivateKey>;
  try {
    key = createPrivateKey(material.keyPem);
  } catch (err) {
    // The key's text never goes into the message.
    throw new IdentityMaterialError('private key does not parse', err);
  }
  if (!leaf.checkPrivateKey(key)) throw new IdentityMaterialError('private key does not match the leaf');
  const uris = uriSans(leaf);
  if (uris.length !== 1 || uris[0] !== id)
    throw new IdentityMaterialError(`leaf names ${JSON.stringify(uris)}, expected ${id}`);
  return Object.freeze({
    notBeforeMs: Date.parse(leaf.validFrom),
    notAfterMs: Date.parse(leaf.validTo),
    // A leaf without its issuer in the chain (a self-signed test leaf) reports its own.
    issuerFingerprint: certFingerprint(issuer ?? leaf),
    fingerprint: certFingerprint(leaf),
  });
}

function checkAnchors(anchors: readonly string[]): readonly string[] {
  for (const pem of anchors) {
    try {
      new X509Certificate(pem);
    } catch (err) {
      throw new IdentityMaterialError('trust anchor does not parse', err);
    }
  }
  return Object.freeze([...anchors]);
}

/** The URI SANs of a certificate (`URI:` entries of Node's subjectAltName text). */
export function uriSans(cert: X509Certificate): string[] {
  const san = cert.subjectAltName ?? '';
  return san
    .split(/,\s*/)
    .filter((s) => s.startsWith('URI:'))
    .map((s) => s.slice(4));
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x) => b.includes(x));
}
