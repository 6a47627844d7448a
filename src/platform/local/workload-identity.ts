/**
 * The identity `weft run` gives its proxy (docs/identity.md): a one-time bootstrap token minted
 * through the API for the workload's SPIFFE ID, and the trust bundle, written into a private
 * temporary directory (0700, files 0600) that the proxy reads before its ready line; the run
 * removes it as soon as the proxy is ready (and again, idempotently, when it ends). A run killed
 * with SIGKILL in between leaves it behind; its token is useless after its first use or 10 min.
 */
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatHostPort, type HostPort, parseHostPort } from '../../lib/addr.js';
import { newIdentityApiClient } from '../../lib/api-client-identity.js';

export interface WorkloadIdentity {
  /** The SPIFFE ID, e.g. spiffe://weft.local/ns/default/sa/books. */
  readonly identity: string;
  /** `host:port` of the Identity service, as the proxy should dial it. */
  readonly identityAddr: string;
  readonly tokenFile: string;
  readonly trustAnchorsFile: string;
  /** Removes the directory; safe to call more than once. */
  remove(): Promise<void>;
}

/**
 * Mints the token and writes the files. `identityAddr` overrides the address the control plane
 * reports (which is its bind address: a wildcard host is replaced by the API's host).
 */
export async function prepareWorkloadIdentity(
  apiAddr: HostPort,
  namespace: string,
  account: string,
  identityAddr?: HostPort,
): Promise<WorkloadIdentity> {
  const client = newIdentityApiClient(apiAddr);
  const status = await client.status();
  const identity = `spiffe://${status.trustDomain}/ns/${namespace}/sa/${account}`;
  const [minted, bundle] = await Promise.all([client.mintToken(identity), client.trustBundle()]);
  const dir = await mkdtemp(join(tmpdir(), 'weft-run-identity-'));
  const remove = () => rm(dir, { recursive: true, force: true });
  try {
    await chmod(dir, 0o700);
    const tokenFile = join(dir, 'token');
    const trustAnchorsFile = join(dir, 'trust-anchors.pem');
    await writeFile(tokenFile, minted.token, { mode: 0o600, flag: 'wx' });
    await writeFile(trustAnchorsFile, bundle, { mode: 0o600, flag: 'wx' });
    return {
      identity,
      identityAddr: dialable(identityAddr, status.identityAddr, apiAddr),
      tokenFile,
      trustAnchorsFile,
      remove,
    };
  } catch (err) {
    await remove();
    throw err;
  }
}

function dialable(given: HostPort | undefined, reported: string, apiAddr: HostPort): string {
  if (given) return formatHostPort(given);
  const at = parseHostPort(reported);
  const wildcard = at.host === '0.0.0.0' || at.host === '::' || at.host === '';
  return formatHostPort(wildcard ? { host: apiAddr.host, port: at.port } : at);
}
