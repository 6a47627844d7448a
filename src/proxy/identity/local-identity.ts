/**
 * What the proxy's TLS layers need from this workload's identity (docs/identity.md): the SPIFFE ID,
 * TLS contexts built from the current leaf, key, chain and trust anchors, and a signal when they
 * change. Two implementations: the control-plane client (identity-client.ts) and static PEM
 * material for tests (static-identity.ts). Keep this interface stable: src/proxy/tls/ builds on it.
 */
import type tls from 'node:tls';

export interface LocalIdentity {
  /** This workload's SPIFFE ID, e.g. `spiffe://weft.local/ns/default/sa/books`. */
  readonly id: string;
  /** True once a certificate is held; stays true while it is replaced. */
  ready(): boolean;
  /** Resolves when a certificate is first held (at once if it already is); never rejects. */
  whenReady(): Promise<void>;
  /**
   * The context for accepting mesh connections: the current leaf, key and intermediates, the
   * current trust anchors as `ca`, TLS 1.3 only. A new object after every change; connections
   * keep the context they started with. Throws IdentityNotReadyError before `ready()`.
   * Note: a `tls.Server` takes its version bounds from its own options, not from a context an
   * SNICallback swaps in: pass `minVersion: 'TLSv1.3'` there too, or hand this context to
   * `new tls.TLSSocket(socket, { isServer: true, secureContext })`, which honours it.
   */
  serverContext(): tls.SecureContext;
  /** The same for dialling peers (the leaf is the client certificate). */
  clientContext(): tls.SecureContext;
  /** The PEM of every trust anchor a peer's chain may end at; a new array after every change. */
  trustAnchors(): readonly string[];
  /** The certificate held now, or null before the first one. */
  certificate(): LeafInfo | null;
  /**
   * Calls `listener` synchronously after the certificate or the trust anchors changed (the new
   * contexts are already in place). Returns a function that removes the listener.
   */
  onChange(listener: () => void): () => void;
  /** Stops renewals and watches; contexts already handed out stay usable. Idempotent. */
  close(): void;
}

/** The leaf in use, as shown on the admin `/identity` endpoint and in metrics. */
export interface LeafInfo {
  /** The leaf's notBefore/notAfter, Unix milliseconds. */
  readonly notBeforeMs: number;
  readonly notAfterMs: number;
  /** SHA-256 of the DER of the certificate that signed the leaf (lower-case hex, no colons). */
  readonly issuerFingerprint: string;
  /** SHA-256 of the leaf's DER (lower-case hex, no colons). */
  readonly fingerprint: string;
}

/** Key, certificate chain and trust anchors, all PEM. */
export interface IdentityMaterial {
  /** PKCS#8 private key. */
  readonly keyPem: string;
  /** The leaf first, then the intermediates up to (not including) an anchor. */
  readonly chainPem: readonly string[];
}
