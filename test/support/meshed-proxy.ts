/**
 * Proxies with identities from a real control plane (docs/identity.md), as `weft run` starts
 * them: a one-time token and the trust bundle in files, the four WEFT_PROXY_IDENTITY* settings,
 * and ready once the certificate is held. Also `openssl` as a test client.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RunningControlPlane } from '../../src/control/control-plane.js';
import { parseHostPort } from '../../src/lib/addr.js';
import { newLogger } from '../../src/lib/log.js';
import { prepareWorkloadIdentity } from '../../src/platform/local/workload-identity.js';
import { type HttpApp, startHttpApp } from './apps.js';
import { startTestControlPlane } from './control-plane.js';
import { eventually } from './eventually.js';
import { type ProxyProcess, startProxy } from './proxy-process.js';

/** The SPIFFE ID of `account` in namespace default of the default trust domain. */
export const spiffe = (account: string): string => `spiffe://weft.local/ns/default/sa/${account}`;

/**
 * Starts `weft proxy ...args` as `account` (namespace default) and resolves once /ready answers
 * 200 (the certificate is held). The token and anchors files are removed once it has read them.
 */
export async function startMeshedProxy(
  control: RunningControlPlane,
  account: string,
  args: string[],
): Promise<ProxyProcess> {
  const files = await prepareWorkloadIdentity(parseHostPort(control.addresses.api), 'default', account);
  try {
    const proxy = await startProxy({
      args,
      env: {
        WEFT_PROXY_IDENTITY: files.identity,
        WEFT_PROXY_IDENTITY_ADDR: files.identityAddr,
        WEFT_PROXY_IDENTITY_TOKEN_FILE: files.tokenFile,
        WEFT_PROXY_IDENTITY_TRUST_ANCHORS_FILE: files.trustAnchorsFile,
      },
    });
    try {
      await eventually(async () => assert.equal((await proxy.adminGet('/ready')).status, 200), {
        timeoutMs: 15_000,
      });
    } catch (err) {
      await proxy.stop();
      throw err;
    }
    return proxy;
  } finally {
    await files.remove();
  }
}

/** What admin `/identity` says (the fields tests look at). */
export interface IdentityJson {
  identity: string;
  ready: boolean;
  fingerprint: string;
  issuerFingerprint: string;
  anchors: { fingerprint: string }[];
}

export async function identityOf(proxy: ProxyProcess): Promise<IdentityJson> {
  const { status, body } = await proxy.adminGet('/identity');
  assert.equal(status, 200, body);
  return JSON.parse(body) as IdentityJson;
}

export interface OpensslResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `openssl ...args` with `stdin`; killed after `timeoutMs` (15 s); resolves whatever its exit. */
export function openssl(args: string[], stdin = '', timeoutMs = 15_000): Promise<OpensslResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('openssl', args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.on('error', () => {});
    child.stdin.end(stdin);
  });
}

/** The first PEM certificate in `text` (as `openssl s_client -showcerts` prints them). */
export function firstPemCertificate(text: string): string | undefined {
  return /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(text)?.[0];
}

/** A control plane, an HTTP app, and `books`'s inbound proxy in front of it (no outbound). */
export interface MeshedInbound {
  /** A temporary directory the caller may use too; removed by close(). */
  readonly dir: string;
  readonly control: RunningControlPlane;
  readonly httpApp: HttpApp;
  readonly inBooks: ProxyProcess;
  /** Stops the proxy, the app and the control plane, and removes `dir`. */
  close(): Promise<void>;
}

/** Starts a MeshedInbound in a new temporary directory named after `prefix`. */
export async function startMeshedInbound(prefix: string): Promise<MeshedInbound> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  let control: RunningControlPlane | undefined;
  let httpApp: HttpApp | undefined;
  let inBooks: ProxyProcess | undefined;
  const close = async () => {
    await inBooks?.stop();
    await httpApp?.close();
    await control?.shutdown();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    control = await startTestControlPlane({
      stateDir: join(dir, 'state'),
      log: newLogger('error', {}, () => {}),
    });
    httpApp = await startHttpApp();
    inBooks = await startMeshedProxy(control, 'books', [
      '--app-port',
      String(httpApp.port),
      '--outbound-listen-addr',
      'none',
    ]);
    return { dir, control, httpApp, inBooks, close };
  } catch (err) {
    await close();
    throw err;
  }
}
