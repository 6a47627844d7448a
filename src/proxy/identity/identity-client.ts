/**
 * The proxy's identity from the control plane (docs/identity.md): bootstraps a certificate with
 * the one-time token, renews it at 70% of its lifetime (or within seconds of an issuer change)
 * authenticating with the current leaf, and follows the trust bundle over WatchTrust.
 *
 * Every renewal makes a new ECDSA P-256 key in memory (bootstrap attempts share one, so a retry
 * after a lost response is certified again); the key and the token are never logged.
 * Failures are retried with jittered exponential backoff: the bootstrap until it succeeds, a
 * renewal while the current leaf is still valid. A broken WatchTrust stream is reopened the same
 * way; the anchors already held stay in force meanwhile.
 */
import * as grpc from '@grpc/grpc-js';
import type { CertifyResponse, TrustBundleMessage } from '../../../proto/identity.js';
import type { Logger } from '../../lib/log.js';
import { type BackoffOptions, backoffMs } from '../balance/failure-accrual.js';
import { newKeyAndCsr } from './csr.js';
import { newIdentityGrpcClient, trustDomainOf } from './identity-channel.js';
import { CertifyError } from './identity-errors.js';
import { IdentityState } from './identity-state.js';
import { generationRenewDelayMs, renewDelayMs } from './renewal-schedule.js';

export interface IdentityClientOptions {
  /** This workload's SPIFFE ID. */
  readonly id: string;
  /** `host:port` of the Identity service. */
  readonly addr: string;
  /** The one-time bootstrap token (already read from its file). */
  readonly token: string;
  /** PEM anchors to trust before the first bundle arrives. */
  readonly anchors: readonly string[];
  /** Told after every Certify attempt. */
  readonly onRefresh?: (result: 'ok' | 'failure') => void;
  /** Retry backoff for Certify and WatchTrust (default 250 ms → 10 s, jitter 0.5). */
  readonly backoff?: BackoffOptions;
  /** Deadline of one Certify call (default 10 s). */
  readonly certifyTimeoutMs?: number;
  readonly random?: () => number;
}

const DEFAULT_BACKOFF: BackoffOptions = Object.freeze({
  minBackoffMs: 250,
  maxBackoffMs: 10_000,
  jitter: 0.5,
});
/** Never renew sooner than this after a success (a leaf capped by an expiring issuer is short). */
const MIN_RENEW_DELAY_MS = 1_000;

/** A LocalIdentity kept current by the control plane. `start()` begins bootstrap and watching. */
export class ControlPlaneIdentity extends IdentityState {
  readonly #opts: IdentityClientOptions;
  readonly #log: Logger;
  readonly #trustDomain: string;
  readonly #backoff: BackoffOptions;
  readonly #random: () => number;
  #token: string;
  #bootstrapKey: Awaited<ReturnType<typeof newKeyAndCsr>> | undefined;
  /** The issuer generation our leaf came from; '' before the first. */
  #generation = '';
  /** A generation WatchTrust announced while a Certify was in flight (checked when it ends). */
  #announcedInFlight: string | undefined;
  /** True once the current WatchTrust stream delivered a bundle: it, not Certify, then owns the anchors. */
  #watchLive = false;
  #renewTimer: NodeJS.Timeout | undefined;
  #renewAtMs = Number.POSITIVE_INFINITY;
  #certifying = false;
  #certifyFailures = 0;
  #watch: { client: grpc.Client; call: grpc.ClientReadableStream<TrustBundleMessage> } | undefined;
  #watchTimer: NodeJS.Timeout | undefined;
  #watchFailures = 0;

  constructor(opts: IdentityClientOptions, log: Logger) {
    super(opts.id);
    this.#opts = opts;
    this.#log = log;
    this.#trustDomain = trustDomainOf(opts.id);
    this.#backoff = opts.backoff ?? DEFAULT_BACKOFF;
    this.#random = opts.random ?? Math.random;
    this.#token = opts.token;
    this.setAnchors(opts.anchors);
    this.onClose = () => {
      clearTimeout(this.#renewTimer);
      clearTimeout(this.#watchTimer);
      this.#closeWatch();
    };
  }

  /** Starts the bootstrap Certify and the WatchTrust stream. */
  start(): void {
    this.#schedule(0);
    this.#openWatch();
  }

  /** Runs (or reschedules) a Certify `delayMs` from now, unless one is due sooner. */
  #schedule(delayMs: number): void {
    if (this.closed) return;
    const at = Date.now() + delayMs;
    if (this.#renewTimer && at >= this.#renewAtMs) return;
    clearTimeout(this.#renewTimer);
    this.#renewAtMs = at;
    this.#renewTimer = setTimeout(() => {
      this.#renewTimer = undefined;
      this.#renewAtMs = Number.POSITIVE_INFINITY;
      void this.#certify();
    }, delayMs);
    this.#renewTimer.unref();
  }

  async #certify(): Promise<void> {
    if (this.#certifying || this.closed) return;
    this.#certifying = true;
    const renewal = this.ready();
    try {
      const res = await this.#certifyOnce(renewal);
      this.#apply(res);
      this.#certifyFailures = 0;
      this.#opts.onRefresh?.('ok');
      const leaf = this.certificate();
      if (leaf) {
        const delay = renewDelayMs(leaf.notBeforeMs, leaf.notAfterMs, Date.now(), this.#random);
        this.#schedule(Math.max(MIN_RENEW_DELAY_MS, delay));
        // The issuer changed while this call was in flight: that renewal is still due.
        const announced = this.#announcedInFlight;
        if (announced !== undefined) this.#renewIfStale(announced);
        this.#log.info(renewal ? 'certificate renewed' : 'certificate obtained', {
          identity: this.id,
          notAfter: new Date(leaf.notAfterMs).toISOString(),
          renewInMs: Math.round(delay),
        });
      }
    } catch (err) {
      this.#opts.onRefresh?.('failure');
      this.#retryAfterFailure(renewal, err);
    } finally {
      this.#certifying = false;
      this.#announcedInFlight = undefined;
    }
  }

  #retryAfterFailure(renewal: boolean, err: unknown): void {
    const delay = backoffMs(this.#certifyFailures++, this.#backoff, this.#random);
    const leaf = this.certificate();
    const detail = { identity: this.id, error: (err as Error).message, retryInMs: Math.round(delay) };
    if (!renewal) {
      // The token may already be spent (the server spends it once it matched); trying again
      // still helps when the call never reached the server.
      this.#log.warn('certificate bootstrap failed', detail);
      this.#schedule(delay);
    } else if (leaf && leaf.notAfterMs > Date.now()) {
      this.#log.warn('certificate renewal failed', {
        ...detail,
        notAfter: new Date(leaf.notAfterMs).toISOString(),
      });
      this.#schedule(Math.min(delay, Math.max(0, leaf.notAfterMs - Date.now() - 1)));
    } else {
      this.#log.error('certificate expired and renewal failed; the proxy needs a new bootstrap token', {
        identity: this.id,
        error: (err as Error).message,
      });
    }
  }

  /** One Certify: bootstrap with the token, or renewal with the current leaf as client certificate. */
  async #certifyOnce(renewal: boolean): Promise<CertifyResponse & { keyPem: string }> {
    // Bootstrap attempts share one key: if a response is lost after the server spent the token,
    // the retry presents the same key and the server certifies it again (TokenValidator). Each
    // renewal gets a new key.
    if (!renewal) this.#bootstrapKey ??= await newKeyAndCsr(this.id);
    const { keyPem, csrDer } = renewal ? await newKeyAndCsr(this.id) : this.#bootstrapKey!;
    const client = newIdentityGrpcClient({
      addr: this.#opts.addr,
      trustDomain: this.#trustDomain,
      anchors: this.trustAnchors(),
      clientCert: renewal ? (this.currentMaterial() ?? undefined) : undefined,
    });
    try {
      const res = await new Promise<CertifyResponse>((resolve, reject) => {
        const deadline = new Date(Date.now() + (this.#opts.certifyTimeoutMs ?? 10_000));
        client.Certify(
          { identity: this.id, token: renewal ? '' : this.#token, certificateSigningRequest: csrDer },
          { deadline },
          (err, r) => (err || !r ? reject(err ?? new Error('empty response')) : resolve(r)),
        );
      });
      // The token is one-time: once a certificate is held it is never sent again.
      if (!renewal) {
        this.#token = '';
        this.#bootstrapKey = undefined;
      }
      return { ...res, keyPem };
    } catch (err) {
      const e = err as grpc.ServiceError;
      const code = typeof e.code === 'number' ? (grpc.status[e.code] ?? e.code) : 'unknown';
      throw new CertifyError(
        `Certify (${renewal ? 'renewal' : 'bootstrap'}) failed: ${code} ${e.details ?? e.message}`,
        err,
      );
    } finally {
      client.close();
    }
  }

  #apply(res: CertifyResponse & { keyPem: string }): void {
    const anchors = !this.#watchLive && res.trust?.anchorPems?.length ? res.trust.anchorPems : undefined;
    try {
      this.setCertificate({ keyPem: res.keyPem, chainPem: [res.leafPem, ...res.intermediatePems] }, anchors);
    } catch (err) {
      throw new CertifyError(`the issued certificate is unusable: ${(err as Error).message}`, err);
    }
    this.#generation = res.trust?.issuerGeneration ?? '';
  }

  #openWatch(): void {
    if (this.closed) return;
    const client = newIdentityGrpcClient({
      addr: this.#opts.addr,
      trustDomain: this.#trustDomain,
      anchors: this.trustAnchors(),
    });
    const call = client.WatchTrust({});
    const watch = { client, call };
    this.#watch = watch;
    call.on('data', (b: TrustBundleMessage) => {
      this.#watchFailures = 0;
      this.#watchLive = true;
      this.#onBundle(b);
    });
    call.on('error', () => {}); // the status says it all
    call.on('status', (s: grpc.StatusObject) => {
      if (this.closed || this.#watch !== watch) return;
      this.#watchLive = false;
      this.#closeWatch();
      const delay = backoffMs(this.#watchFailures++, this.#backoff, this.#random);
      this.#log.warn('trust bundle stream ended; keeping the anchors held', {
        code: grpc.status[s.code] ?? s.code,
        details: s.details,
        retryInMs: Math.round(delay),
      });
      this.#watchTimer = setTimeout(() => this.#openWatch(), delay);
      this.#watchTimer.unref();
    });
  }

  #closeWatch(): void {
    const w = this.#watch;
    this.#watch = undefined;
    w?.call.cancel();
    w?.client.close();
  }

  #onBundle(b: TrustBundleMessage): void {
    this.#log.debug('trust bundle received', {
      anchors: b.anchorPems.length,
      generation: b.issuerGeneration,
    });
    if (b.anchorPems.length > 0) {
      try {
        this.setAnchors(b.anchorPems);
      } catch (err) {
        this.#log.warn('ignoring an unusable trust bundle', { error: (err as Error).message });
        return;
      }
    }
    if (b.issuerGeneration === '') return;
    if (this.#certifying) this.#announcedInFlight = b.issuerGeneration;
    else this.#renewIfStale(b.issuerGeneration);
  }

  /**
   * A re-issued issuer: renew soon so the mesh moves to it (and off an old anchor) quickly.
   * Generations are opaque: only an announcement that differs from our leaf's triggers this, so
   * a stale announcement costs at most one extra renewal.
   */
  #renewIfStale(announced: string): void {
    if (!this.ready() || announced === this.#generation) return;
    const delay = generationRenewDelayMs(this.#random);
    this.#log.info('issuer changed; renewing soon', { generation: announced, renewInMs: Math.round(delay) });
    this.#schedule(delay);
  }
}
