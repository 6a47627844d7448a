/**
 * Discovery over the Destination API against a scripted control plane: a real grpc-js server on
 * 127.0.0.1:0 whose answers each test writes (like linkerd2-proxy's integration controller).
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import {
  type DestinationProfile,
  destinationApi,
  type GetDestination,
  type Update,
  type WeightedAddr,
} from '../../../proto/destination.js';
import { newLogger } from '../../lib/log.js';
import type { Destination, Discovery } from './discovery.js';
import { newGrpcDiscovery } from './discovery-grpc.js';

const log = newLogger('error', {}, () => {});
const FAST_BACKOFF = { minBackoffMs: 20, maxBackoffMs: 100, jitter: 0.5 };

type ProfileCall = grpc.ServerWritableStream<GetDestination, DestinationProfile>;

/**
 * A scripted Destination server: every Get stream is handed to `onGet` and kept in `streams`;
 * every GetProfile stream to `onProfile` (default: ended at once, a control plane without
 * profiles) and kept in `profiles`.
 */
class ScriptedControlPlane {
  readonly streams: grpc.ServerWritableStream<GetDestination, Update>[] = [];
  readonly profiles: ProfileCall[] = [];
  private server = new grpc.Server();
  port = 0;

  constructor(
    private readonly onGet: (call: grpc.ServerWritableStream<GetDestination, Update>) => void,
    private readonly onProfile: (call: ProfileCall) => void = (call) => call.end(),
  ) {}

  async start(port = 0): Promise<string> {
    this.server = new grpc.Server();
    this.server.addService(destinationApi().service, {
      Get: (call: grpc.ServerWritableStream<GetDestination, Update>) => {
        this.streams.push(call);
        this.onGet(call);
      },
      GetProfile: (call: ProfileCall) => {
        this.profiles.push(call);
        this.onProfile(call);
      },
    });
    this.port = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (e, p) =>
        e ? reject(e) : resolve(p),
      ),
    );
    return `127.0.0.1:${this.port}`;
  }

  stop(): void {
    this.server.forceShutdown();
  }
}

const addr = (a: string, labels: Record<string, string> = {}): WeightedAddr => ({
  addr: a,
  weight: 1,
  identity: '',
  protocolHint: 'h2',
  metricLabels: labels,
});
const add = (...addrs: WeightedAddr[]): Update => ({ update: 'add', add: { addrs } });
const remove = (...addrs: WeightedAddr[]): Update => ({ update: 'remove', remove: { addrs } });
const none = (exists: boolean): Update => ({ update: 'noEndpoints', noEndpoints: { exists } });
const profile = (opaque: boolean): DestinationProfile => ({
  opaquePorts: opaque ? [80] : [],
  opaque,
  fullyQualifiedName: '',
  routes: [],
});
/** Whether the server saw the client cancel `call`. */
const cancelled = (call: grpc.ServerWritableStream<GetDestination, unknown>) => call.cancelled;
const addrsOf = (d: Destination) => d.endpoints.map((e) => e.addr).sort();

async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('newGrpcDiscovery', () => {
  const toClose: (Discovery | ScriptedControlPlane)[] = [];
  after(() => {
    for (const c of toClose) c instanceof ScriptedControlPlane ? c.stop() : c.close();
  });

  it('resolves from the first update and keeps the same Destination live', async () => {
    const cp = new ScriptedControlPlane((call) =>
      call.write(
        call.request.authority === 'books:80' ? add(addr('10.0.0.1:4143', { pod: 'b0' })) : none(false),
      ),
    );
    toClose.push(cp);
    const discovery = newGrpcDiscovery(await cp.start(), log, { backoff: FAST_BACKOFF });
    toClose.push(discovery);

    const books = (await discovery.resolve('books:80')) as Destination;
    assert.deepEqual(addrsOf(books), ['10.0.0.1:4143']);
    assert.deepEqual(
      { ...books.endpoints[0], labels: { ...books.endpoints[0].labels } },
      {
        addr: '10.0.0.1:4143',
        host: '10.0.0.1',
        port: 4143,
        meshed: true,
        weight: 1,
        identity: undefined,
        labels: { pod: 'b0' },
        opaque: false,
      },
    );
    assert.equal(await discovery.resolve('unknown:80'), null, 'NoEndpoints{exists:false} is unmeshed');
    assert.equal(await discovery.resolve('books:80'), books, 'one stream and one object per authority');
    assert.equal(cp.streams.length, 2);

    const stream = cp.streams[0];
    stream.write(add(addr('10.0.0.2:4143')));
    await until(() => books.endpoints.length === 2, 'the added endpoint');
    stream.write(remove(addr('10.0.0.1:4143')));
    await until(() => books.endpoints.length === 1, 'the removal');
    assert.deepEqual(addrsOf(books), ['10.0.0.2:4143']);
    stream.write(none(false));
    await until(() => books.endpoints.length === 0, 'the service going away');
    assert.equal(await discovery.resolve('books:80'), null);
    stream.write(add(addr('10.0.0.3:4143')));
    await until(() => books.endpoints.length === 1, 'the service coming back');
    assert.equal(await discovery.resolve('books:80'), books);
  });

  it('answers null after the first-answer deadline when the control plane is unreachable', async () => {
    const cp = new ScriptedControlPlane(() => {});
    const address = await cp.start();
    cp.stop(); // nothing listens there any more
    const discovery = newGrpcDiscovery(address, log, { firstAnswerTimeoutMs: 200, backoff: FAST_BACKOFF });
    toClose.push(discovery);
    const started = Date.now();
    assert.equal(await discovery.resolve('books:80'), null);
    assert.ok(Date.now() - started < 2000);
  });

  it('keeps the last endpoints while the stream is down, then resyncs from the new snapshot', async () => {
    let snapshot = add(addr('10.0.0.1:4143'), addr('10.0.0.2:4143'));
    const cp = new ScriptedControlPlane((call) => call.write(snapshot));
    toClose.push(cp);
    const discovery = newGrpcDiscovery(await cp.start(), log, { backoff: FAST_BACKOFF });
    toClose.push(discovery);
    const books = (await discovery.resolve('books:80')) as Destination;
    assert.deepEqual(addrsOf(books), ['10.0.0.1:4143', '10.0.0.2:4143']);

    // The control plane goes away: nothing changes for the balancer.
    const port = cp.port;
    cp.stop();
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(addrsOf(books), ['10.0.0.1:4143', '10.0.0.2:4143']);
    assert.equal(await discovery.resolve('books:80'), books);

    // Back on the same port with a different state: the first message replaces what was known.
    snapshot = add(addr('10.0.0.3:4143'));
    await cp.start(port);
    await until(() => addrsOf(books).join() === '10.0.0.3:4143', 'the resync');
    assert.equal(cp.streams.length, 2, 'resubscribed once');
  });

  it('subscribes to the profile too: its opaque mark wins over the endpoints hints and follows changes', async () => {
    const cp = new ScriptedControlPlane(
      (call) => call.write(add(addr('10.0.0.1:4143'))),
      (call) => call.write(profile(true)),
    );
    toClose.push(cp);
    const discovery = newGrpcDiscovery(await cp.start(), log, { backoff: FAST_BACKOFF });
    toClose.push(discovery);
    const books = (await discovery.resolve('books:80')) as Destination;
    assert.equal(books.opaque, true, 'the first resolve waited for the profile');
    assert.equal(cp.profiles.length, 1);
    assert.equal(cp.profiles[0].request.authority, 'books:80');
    let changes = 0;
    books.watch(() => changes++);
    cp.profiles[0].write(profile(false));
    await until(() => !books.opaque, 'the profile change');
    assert.equal(changes, 1, 'watchers hear of it');
    cp.streams[0].write(add(addr('10.0.0.2:4143')));
    await until(() => books.endpoints.length === 2, 'the added endpoint');
    assert.equal(books.opaque, false, 'endpoint updates keep the profile mark');
  });

  it('closes an idle authority’s streams, not while someone watches it, and subscribes afresh on the next resolve', async () => {
    const cp = new ScriptedControlPlane(
      (call) => call.write(add(addr('10.0.0.1:4143'))),
      (call) => call.write(profile(false)),
    );
    toClose.push(cp);
    const discovery = newGrpcDiscovery(await cp.start(), log, { backoff: FAST_BACKOFF, idleMs: 100 });
    toClose.push(discovery);
    const first = (await discovery.resolve('books:80')) as Destination;
    const unwatch = first.watch(() => {}); // a request waiting for an endpoint
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(cancelled(cp.streams[0]) || cancelled(cp.profiles[0]), false, 'kept while watched');
    unwatch();
    await until(() => cancelled(cp.streams[0]) && cancelled(cp.profiles[0]), 'both streams cancelled');
    assert.deepEqual(addrsOf(first), ['10.0.0.1:4143'], 'its last state stays for whoever holds it');
    const again = (await discovery.resolve('books:80')) as Destination;
    assert.notEqual(again, first, 'a new subscription');
    assert.deepEqual(addrsOf(again), ['10.0.0.1:4143']);
    assert.equal(cp.streams.length, 2);
    assert.equal(cp.profiles.length, 2);
  });
});
