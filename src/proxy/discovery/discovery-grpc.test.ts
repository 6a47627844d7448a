/**
 * Discovery over the Destination API against a scripted control plane: a real grpc-js server on
 * 127.0.0.1:0 whose answers each test writes (like linkerd2-proxy's integration controller).
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import {
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

/** A scripted Destination server: every Get stream is handed to `onGet` and kept in `streams`. */
class ScriptedControlPlane {
  readonly streams: grpc.ServerWritableStream<GetDestination, Update>[] = [];
  private server = new grpc.Server();
  port = 0;

  constructor(private readonly onGet: (call: grpc.ServerWritableStream<GetDestination, Update>) => void) {}

  async start(port = 0): Promise<string> {
    this.server = new grpc.Server();
    this.server.addService(destinationApi().service, {
      Get: (call: grpc.ServerWritableStream<GetDestination, Update>) => {
        this.streams.push(call);
        this.onGet(call);
      },
      GetProfile: (call: grpc.ServerWritableStream<GetDestination, unknown>) => call.end(),
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
});
