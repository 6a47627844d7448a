/**
 * Policy/WatchInbound between a real control plane (in this process, real sockets) and the
 * proxy's real policy client: the first policy, a change seen within 1 s, the namespace default,
 * fail static while the control plane is down, and a fresh policy once it is back.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { RunningControlPlane } from '../src/control/control-plane.js';
import { newLogger } from '../src/lib/log.js';
import { type InboundPolicySource, policySourceFor } from '../src/proxy/policy/policy-client.js';
import { startTestControlPlane } from './support/control-plane.js';
import { eventually } from './support/eventually.js';

/** Issue 4: a policy change reaches live proxies within this. */
const PROPAGATION_BOUND_MS = 1000;
const logs: string[] = [];
const log = newLogger('debug', {}, (l) => logs.push(l));
const WEB = 'spiffe://weft.local/ns/shop/sa/web';

let dir: string;
let control: RunningControlPlane | undefined;
let source: InboundPolicySource;

const server = (name: string, port: number, accessPolicy = 'deny') => ({
  apiVersion: 'weft.io/v1alpha1',
  kind: 'Server',
  metadata: { name, namespace: 'shop' },
  spec: { selector: { service: 'books' }, port, accessPolicy },
});
const allowWeb = {
  apiVersion: 'weft.io/v1alpha1',
  kind: 'AuthorizationPolicy',
  metadata: { name: 'web', namespace: 'shop' },
  spec: { targetRef: { kind: 'Server', name: 'books-http' }, from: [{ identities: [WEB] }] },
};
const peer = { tls: true, clientId: WEB, remoteAddr: '127.0.0.1' };

/** Waits until `check` holds for the source's policy; resolves with how long that took (ms). */
async function seen(check: () => boolean, timeoutMs = 5000): Promise<number> {
  const start = performance.now();
  await eventually(() => assert.ok(check()), { timeoutMs, intervalMs: 5 });
  return performance.now() - start;
}

describe('Policy/WatchInbound', () => {
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'weft-policy-watch-'));
    control = await startTestControlPlane({ stateDir: dir, log });
    await control.store.apply(server('books-http', 7002));
    source = policySourceFor(
      {
        destinationAddr: { host: '127.0.0.1', port: Number(control.addresses.destination.split(':')[1]) },
        workloadNamespace: 'shop',
        workloadService: 'books',
        defaultInboundPolicy: 'all-unauthenticated',
      },
      [7002, 7003],
      log,
      { backoff: { minBackoffMs: 50, maxBackoffMs: 200, jitter: 0.2 } },
    );
  });
  after(async () => {
    source?.close();
    await control?.shutdown();
    await rm(dir, { recursive: true, force: true });
  });

  it('delivers the compiled policy of the workload first', async () => {
    await source.whenReady();
    await seen(() => source.current().server(7002)?.name === 'books-http');
    assert.equal(source.current().decide(7002, peer, { method: 'GET', path: '/' }).verdict, 'deny');
    assert.equal(source.current().policy.defaultSource, 'mesh');
    assert.equal(source.current().decide(7003, peer).verdict, 'allow', 'mesh default all-unauthenticated');
  });

  it('applies an AuthorizationPolicy, a namespace default and a new Server within 1 s each', async () => {
    await control!.store.apply(allowWeb);
    const tookAuthz = await seen(
      () => source.current().decide(7002, peer, { method: 'GET', path: '/' }).authorization === 'web',
    );
    await control!.store.apply({
      apiVersion: 'weft.io/v1alpha1',
      kind: 'Namespace',
      metadata: { name: 'shop' },
      spec: { defaultInboundPolicy: 'deny' },
    });
    const tookNs = await seen(() => source.current().decide(7003, peer).verdict === 'deny');
    await control!.store.apply(server('books-tcp', 7003, 'audit'));
    const tookServer = await seen(() => source.current().decide(7003, peer).verdict === 'audit-deny');
    for (const took of [tookAuthz, tookNs, tookServer])
      assert.ok(took < PROPAGATION_BOUND_MS, `a change took ${took.toFixed(0)} ms to arrive`);
  });

  it('follows a proxy known only by its identity once its Workload is registered', async () => {
    const id = 'spiffe://weft.local/ns/shop/sa/books';
    const byIdentity = policySourceFor(
      {
        destinationAddr: { host: '127.0.0.1', port: Number(control!.addresses.destination.split(':')[1]) },
        workloadNamespace: 'default',
        identity: id,
        defaultInboundPolicy: 'all-unauthenticated',
      },
      [7002],
      log,
    );
    try {
      await byIdentity.whenReady();
      await seen(() => byIdentity.current().policy.namespace === 'shop');
      assert.equal(byIdentity.current().server(7002), undefined, 'no Workload with this identity yet');
      await control!.store.apply({
        apiVersion: 'weft.io/v1alpha1',
        kind: 'Workload',
        metadata: { name: 'books-7f3a', namespace: 'shop' },
        spec: { service: 'books', address: '127.0.0.1', port: 4143, identity: id },
      });
      const took = await seen(() => byIdentity.current().server(7002)?.name === 'books-http');
      assert.ok(took < PROPAGATION_BOUND_MS, `the Workload took ${took.toFixed(0)} ms to count`);
    } finally {
      byIdentity.close();
    }
  });

  it('keeps the last policy while the control plane is down and takes the new one when it is back', async () => {
    const addr = control!.addresses.destination;
    await control!.shutdown();
    control = undefined;
    await eventually(() => assert.ok(logs.some((l) => l.includes('policy stream ended'))));
    assert.equal(source.current().decide(7002, peer, { method: 'GET', path: '/' }).authorization, 'web');
    control = await startTestControlPlane({ stateDir: dir, log, destinationAddr: addr });
    await control.store.delete('AuthorizationPolicy', 'shop', 'web');
    await seen(
      () => source.current().decide(7002, peer, { method: 'GET', path: '/' }).verdict === 'deny',
      10_000,
    );
  });
});
