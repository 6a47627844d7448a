/**
 * The verdicts of `weft check`, as pure functions of what the probes saw and a clock: the trust
 * anchors and issuer, and each registered proxy's certificate (policy: check-policy.ts). No I/O
 * here, so every threshold is tested with an injected `now` (check-evaluate.test.ts).
 */
import { X509Certificate } from 'node:crypto';
import type { CertSummary, IdentityStatus } from '../lib/api-client-identity.js';
import type { Resource } from '../store/resource.js';

export type CheckStatus = 'ok' | 'warn' | 'fail';

/** One line of the report. */
export interface CheckResult {
  readonly group: 'control plane' | 'identity' | 'proxies' | 'policy';
  /** What was checked, e.g. `workload default/books-0`; what a person greps for. */
  readonly subject: string;
  readonly status: CheckStatus;
  readonly message: string;
}

const DAY_MS = 86_400_000;
/** Anchors (and a supplied issuer, which Weft never re-issues) warn with less than this left. */
export const CA_WARN_BEFORE_MS = 60 * DAY_MS;
/**
 * A generated issuer is re-issued by the CA when less than 30 days remain (ISSUER_RENEW_BEFORE_MS
 * of src/control/identity/ca-material.ts, not imported: that module loads @peculiar/x509), so
 * warning at 60 days would flag every healthy generated issuer for a third of its life; it warns
 * once that automatic re-issue is overdue.
 */
export const GENERATED_ISSUER_WARN_BEFORE_MS = 30 * DAY_MS;
/** Proxies renew at 70% of their leaf's lifetime: less than this fraction left means renewal is overdue. */
export const LEAF_RENEWAL_OVERDUE_FRACTION = 0.3;

/** A certificate's validity window against `now`, with the warning threshold `warnBeforeMs`. */
export function validity(
  cert: Pick<CertSummary, 'notBefore' | 'notAfter'>,
  now: Date,
  warnBeforeMs: number,
): { status: CheckStatus; text: string } {
  const nowMs = now.getTime();
  const notBefore = Date.parse(cert.notBefore);
  const notAfter = Date.parse(cert.notAfter);
  if (nowMs < notBefore) return { status: 'fail', text: `not valid before ${cert.notBefore} (clock skew?)` };
  if (nowMs >= notAfter) return { status: 'fail', text: `expired on ${cert.notAfter}` };
  const left = notAfter - nowMs;
  const text = `valid until ${cert.notAfter.slice(0, 10)} (${days(left)} left)`;
  return { status: left < warnBeforeMs ? 'warn' : 'ok', text };
}

/** One line per trust anchor: valid now, and not within 60 days of expiry. */
export function evaluateAnchors(status: IdentityStatus, now: Date): CheckResult[] {
  if (status.anchors.length === 0)
    return [{ group: 'identity', subject: 'trust anchors', status: 'fail', message: 'the bundle is empty' }];
  return status.anchors.map((a) => {
    const v = validity(a, now, CA_WARN_BEFORE_MS);
    const role = a.signsIssuer ? ', signs the issuer' : '';
    return {
      group: 'identity',
      subject: `trust anchor ${short(a.fingerprint)}`,
      status: v.status,
      message: `${v.text}${role}`,
    };
  });
}

/**
 * The issuer: valid now (warning thresholds above), signed by an anchor of the bundle. With
 * `issuerPem` (the issuer the identity service presented over TLS) and the bundle's PEMs, the
 * signature itself is verified; without them only the CA's own account of its anchor is checked.
 */
export function evaluateIssuer(
  status: IdentityStatus,
  now: Date,
  chain?: { readonly issuerPem: string; readonly anchorPems: readonly string[] },
): CheckResult {
  const i = status.issuer;
  const subject = `issuer generation ${i.generation} (${short(i.fingerprint)})`;
  const warnBefore = status.source === 'generated' ? GENERATED_ISSUER_WARN_BEFORE_MS : CA_WARN_BEFORE_MS;
  const v = validity(i, now, warnBefore);
  const result = (s: CheckStatus, message: string): CheckResult => ({
    group: 'identity',
    subject,
    status: s,
    message,
  });
  if (!status.anchors.some((a) => a.fingerprint === i.anchorFingerprint))
    return result('fail', `${v.text}; its anchor ${short(i.anchorFingerprint)} is not in the trust bundle`);
  if (chain) {
    const why = chainProblem(chain.issuerPem, i.fingerprint, chain.anchorPems);
    if (why) return result('fail', `${v.text}; ${why}`);
  }
  const how = chain ? 'verified against' : 'signed by';
  return result(v.status, `${v.text}, ${how} anchor ${short(i.anchorFingerprint)}`);
}

/** Why `issuerPem` is not the issuer `fingerprint` signed by one of `anchorPems`; undefined when it is. */
function chainProblem(
  issuerPem: string,
  fingerprint: string,
  anchorPems: readonly string[],
): string | undefined {
  let issuer: X509Certificate;
  try {
    issuer = new X509Certificate(issuerPem);
  } catch {
    return 'the identity service presented an issuer that does not parse';
  }
  const seen = fingerprintOf(issuer);
  if (seen !== fingerprint)
    return `the identity service presents issuer ${short(seen)}, not the CA's ${short(fingerprint)}`;
  for (const pem of anchorPems) {
    const anchor = new X509Certificate(pem);
    if (issuer.checkIssued(anchor) && issuer.verify(anchor.publicKey)) return undefined;
  }
  return 'its signature verifies against no anchor of the trust bundle';
}

/** What admin `GET /identity` of a proxy answers (src/proxy/identity/proxy-identity.ts). */
export interface ProxyIdentityJson {
  readonly identity: string;
  readonly ready: boolean;
  readonly notBefore: string | null;
  readonly notAfter: string | null;
  readonly fingerprint: string | null;
  readonly issuerFingerprint: string | null;
  readonly anchors: readonly { readonly fingerprint: string }[];
}

/** What probing one Workload's proxy found. */
export type ProxyObservation =
  | { readonly kind: 'no-admin-address' }
  | { readonly kind: 'unreachable'; readonly adminAddress: string; readonly detail: string }
  /** Something answered, but not as a proxy's admin `/identity` does. */
  | { readonly kind: 'bad-answer'; readonly adminAddress: string; readonly detail: string }
  | { readonly kind: 'no-identity'; readonly adminAddress: string }
  | { readonly kind: 'identity'; readonly adminAddress: string; readonly status: ProxyIdentityJson };

/**
 * One line per Workload: its proxy answers, holds a certificate for the Workload's
 * `spec.identity`, not expired nor overdue for renewal, signed by the current issuer (an older
 * issuer warns: the proxy renews soon after a re-issue), and trusts an anchor of the bundle.
 * `ca` is undefined when the CA status could not be read; then issuer and anchors are not compared.
 */
export function evaluateProxy(
  w: Resource<'Workload'>,
  seen: ProxyObservation,
  ca: IdentityStatus | undefined,
  now: Date,
): CheckResult {
  const subject = `workload ${w.metadata.namespace}/${w.metadata.name}`;
  const result = (s: CheckStatus, message: string): CheckResult => ({
    group: 'proxies',
    subject,
    status: s,
    message,
  });
  const expected = w.spec.identity;
  if (seen.kind === 'no-admin-address')
    return result('warn', 'no spec.adminAddress: its proxy cannot be checked');
  if (seen.kind === 'unreachable')
    return result('fail', `proxy not reachable at ${seen.adminAddress} (${seen.detail})`);
  if (seen.kind === 'bad-answer')
    return result('fail', `${seen.adminAddress} answered GET /identity unlike a Weft proxy (${seen.detail})`);
  if (seen.kind === 'no-identity')
    return expected
      ? result('fail', `proxy at ${seen.adminAddress} has no identity (expected ${expected})`)
      : result('warn', `proxy at ${seen.adminAddress} has no identity: its mesh traffic is plaintext`);
  const p = seen.status;
  if (expected !== undefined && p.identity !== expected)
    return result('fail', `proxy identity is ${p.identity}, but the Workload expects ${expected}`);
  if (!p.ready || p.notBefore === null || p.notAfter === null)
    return result('fail', `${p.identity}: no certificate yet (renewal or bootstrap failing?)`);
  const notBefore = Date.parse(p.notBefore);
  const notAfter = Date.parse(p.notAfter);
  const nowMs = now.getTime();
  if (nowMs < notBefore) return result('fail', `${p.identity}: certificate not valid before ${p.notBefore}`);
  if (nowMs >= notAfter) return result('fail', `${p.identity}: certificate expired on ${p.notAfter}`);
  const left = (notAfter - nowMs) / (notAfter - notBefore);
  const findings: { status: CheckStatus; text: string }[] = [];
  if (left < LEAF_RENEWAL_OVERDUE_FRACTION)
    findings.push({
      status: 'warn',
      text: `renewal overdue: ${Math.floor(left * 100)}% of its lifetime left`,
    });
  if (ca) {
    const bundle = new Set(ca.anchors.map((a) => a.fingerprint));
    if (!p.anchors.some((a) => bundle.has(a.fingerprint)))
      findings.push({ status: 'fail', text: "trusts none of the trust bundle's anchors" });
    else if (!p.anchors.some((a) => a.fingerprint === ca.issuer.anchorFingerprint))
      findings.push({
        status: 'warn',
        text: `does not trust anchor ${short(ca.issuer.anchorFingerprint)} yet (it signs the current issuer)`,
      });
    if (p.issuerFingerprint !== ca.issuer.fingerprint)
      findings.push({
        status: 'warn',
        text: `signed by an older issuer ${short(p.issuerFingerprint ?? '')}, not generation ${ca.issuer.generation}`,
      });
  }
  const status = worst(findings.map((f) => f.status));
  const base = `${p.identity}, certificate valid until ${p.notAfter} (${Math.floor(left * 100)}% left)`;
  return result(status, [base, ...findings.map((f) => f.text)].join('; '));
}

/** The most severe of `statuses` (ok when empty). */
export function worst(statuses: readonly CheckStatus[]): CheckStatus {
  return statuses.includes('fail') ? 'fail' : statuses.includes('warn') ? 'warn' : 'ok';
}

/** Fingerprints are shown this long, as in `weft identity status`. */
export function short(fp: string): string {
  return fp.slice(0, 16);
}

function fingerprintOf(cert: X509Certificate): string {
  return cert.fingerprint256.replaceAll(':', '').toLowerCase();
}

function days(ms: number): string {
  const d = Math.floor(ms / DAY_MS);
  if (d >= 1) return `${d} day${d === 1 ? '' : 's'}`;
  const h = Math.floor(ms / 3_600_000);
  return h >= 1 ? `${h} h` : `${Math.max(1, Math.floor(ms / 60_000))} min`;
}
