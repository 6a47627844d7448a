/**
 * The proxy's identity from its settings (docs/identity.md): reads the token and anchors files
 * once, starts the control-plane client, and reports to the metrics. Also the JSON of the admin
 * `/identity` endpoint.
 */
import { readFile } from 'node:fs/promises';
import { formatHostPort } from '../../lib/addr.js';
import { ConfigError } from '../../lib/errors.js';
import type { Logger } from '../../lib/log.js';
import { PROXY_SETTINGS, type ProxyConfig } from '../config.js';
import type { ProxyMetrics } from '../metrics/proxy-metrics.js';
import { ControlPlaneIdentity } from './identity-client.js';
import type { LocalIdentity } from './local-identity.js';
import { certFingerprint, splitPemCertificates } from './pem.js';

/**
 * A started LocalIdentity, or null when the proxy has no identity settings. Throws ConfigError
 * naming every identity file that cannot be read or holds nothing usable.
 */
export async function newProxyIdentity(
  config: ProxyConfig,
  metrics: ProxyMetrics,
  log: Logger,
): Promise<LocalIdentity | null> {
  const { identity: id, identityAddr, identityTokenFile, identityTrustAnchorsFile } = config;
  if (!id || !identityAddr || !identityTokenFile || !identityTrustAnchorsFile) return null;
  const problems: string[] = [];
  const tokenEnv = PROXY_SETTINGS.identityTokenFile.env;
  const anchorsEnv = PROXY_SETTINGS.identityTrustAnchorsFile.env;
  const token = (await readSetting(tokenEnv, identityTokenFile, problems))?.trim();
  const anchorsText = await readSetting(anchorsEnv, identityTrustAnchorsFile, problems);
  const anchors = splitPemCertificates(anchorsText ?? '');
  if (token === '') problems.push(`${tokenEnv}=${identityTokenFile}: the file is empty`);
  if (anchorsText !== undefined && anchors.length === 0)
    problems.push(`${anchorsEnv}=${identityTrustAnchorsFile}: no PEM certificate in the file`);
  if (problems.length > 0 || token === undefined) throw new ConfigError(problems);
  const identity = new ControlPlaneIdentity(
    {
      id,
      addr: formatHostPort(identityAddr),
      token,
      anchors,
      onRefresh: (result) => metrics.identityRefreshed(result),
    },
    log,
  );
  identity.onChange(() => {
    const leaf = identity.certificate();
    if (leaf) metrics.identityCertificate(leaf.notAfterMs);
  });
  identity.start();
  log.info('identity starting', {
    identity: id,
    identityAddr: formatHostPort(identityAddr),
    anchors: anchors.length,
  });
  return identity;
}

/** The file's text, or undefined with a problem recorded (the content never goes into a message). */
async function readSetting(env: string, path: string, problems: string[]): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    problems.push(`${env}=${path}: cannot read the file (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    return undefined;
  }
}

/**
 * Whether the identity lets the proxy be `/ready`: a certificate is held and has not expired (an
 * expired one means renewal failed for its whole last 30% of lifetime; peers refuse it anyway).
 */
export function identityServing(identity: LocalIdentity, nowMs = Date.now()): boolean {
  const leaf = identity.certificate();
  return identity.ready() && leaf !== null && leaf.notAfterMs > nowMs;
}

/** What admin `/identity` shows: never key material or the token. */
export interface IdentityStatus {
  readonly identity: string;
  readonly ready: boolean;
  readonly notBefore: string | null;
  readonly notAfter: string | null;
  readonly fingerprint: string | null;
  readonly issuerFingerprint: string | null;
  readonly anchors: readonly { readonly fingerprint: string }[];
}

export function identityStatus(identity: LocalIdentity): IdentityStatus {
  const leaf = identity.certificate();
  return {
    identity: identity.id,
    ready: identity.ready(),
    notBefore: leaf ? new Date(leaf.notBeforeMs).toISOString() : null,
    notAfter: leaf ? new Date(leaf.notAfterMs).toISOString() : null,
    fingerprint: leaf?.fingerprint ?? null,
    issuerFingerprint: leaf?.issuerFingerprint ?? null,
    anchors: identity.trustAnchors().map((pem) => ({ fingerprint: certFingerprint(pem) })),
  };
}
