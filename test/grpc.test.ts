/**
 * gRPC through two proxies (grpc-js client → outbound → inbound → grpc-js server), with the
 * client reaching the outbound proxy both ways an app can: an HTTP CONNECT tunnel (grpc_proxy
 * semantics) and h2c prior knowledge with `:authority` naming the service. Every call shape,
 * metadata both ways, deadlines, the app's trailers-only errors, and the proxy's own failures,
 * which must reach the client as gRPC statuses (never HTTP error pages).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import {
  type CallOutcome,
  type EchoClient,
  type EchoReply,
  type EchoRequest,
  grpcClient,
  serverStreamCall,
  startGrpcApp,
  type TestServer,
  unaryCall,
} from './support/apps.js';
import { closedPort } from './support/closed-port.js';
import { sampleSum } from './support/prom-text.js';
import { type ProxyProcess, startProxy, writeDestinationsFile } from './support/proxy-process.js';

/** The service the client asks for; the outbound proxy's destinations map it to the inbound proxy. */
const AUTHORITY = 'echo.weft.test:50051';
/** Meshed, but the app behind its inbound proxy is not listening. */
const DOWN = 'down.weft.test:50051';
/** Known to discovery, with no endpoints. */
const EMPTY = 'empty.weft.test:50051';
/** A bound for every call expected to succeed: a proxy that hangs fails the test instead of stalling it. */
const CALL_DEADLINE_MS = 10_000;
/** The outbound response timeout of the proxy used for the timeout case. */
const RESPONSE_TIMEOUT_MS = 300;

type ClientFactory = (outbound: string, authority: string) => EchoClient;

/** How the app reaches its outbound proxy. */
const MODES: Record<string, ClientFactory> = {
  'CONNECT tunnel (grpc_proxy)': (outbound, authority) => grpcClient(authority, { connectProxy: outbound }),
  'h2c prior knowledge': (outbound, authority) =>
    grpcClient(outbound, { channelOptions: { 'grpc.default_authority': authority } }),
};

let app: TestServer;
let dir: string;
/** The app's inbound proxy. */
let inbound: ProxyProcess;
/** What the clients call. */
let outbound: ProxyProcess;
/** An inbound proxy for a port nothing listens on. */
let downInbound: ProxyProcess;
/** A second outbound proxy on the same destinations, with `--response-timeout-ms`. */
let timeoutOutbound: ProxyProcess;
const clients: EchoClient[] = [];
/** Every proxy started, so after() stops each even when before() failed halfway. */
const started: ProxyProcess[] = [];

async function proxy(args: string[]): Promise<ProxyProcess> {
  const p = await startProxy({ args });
  started.push(p);
  return p;
}

function client(mode: ClientFactory, via: ProxyProcess, authority = AUTHORITY): EchoClient {
  assert.ok(via.outbound, 'the proxy has an outbound listener');
  const c = mode(via.outbound, authority);
  clients.push(c);
  return c;
}

before(async () => {
  app = await startGrpcApp();
  dir = await mkdtemp(join(tmpdir(), 'weft-grpc-'));
  const noOutbound = ['--outbound-listen-addr', 'none'];
  [inbound, downInbound] = await Promise.all([
    proxy(['--app-port', String(app.port), ...noOutbound]),
    proxy(['--app-port', String(await closedPort()), ...noOutbound]),
  ]);
  const destinations = join(dir, 'destinations.yaml');
  // Written before the outbound proxies start, so no name here is ever looked up in DNS.
  await writeDestinationsFile(destinations, [
    { authority: AUTHORITY, endpoints: [{ address: inbound.inbound!, meshed: true, weight: 1 }] },
    { authority: DOWN, endpoints: [{ address: downInbound.inbound!, meshed: true, weight: 1 }] },
    { authority: EMPTY, endpoints: [] },
  ]);
  const outboundArgs = ['--destinations', destinations, '--inbound-listen-addr', 'none'];
  [outbound, timeoutOutbound] = await Promise.all([
    proxy(outboundArgs),
    proxy([...outboundArgs, '--response-timeout-ms', String(RESPONSE_TIMEOUT_MS)]),
  ]);
});

after(async () => {
  for (const c of clients) c.close();
  await Promise.all(started.map((p) => p.stop()));
  await app?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

for (const [modeName, mode] of Object.entries(MODES)) {
  describe(`gRPC through two proxies, ${modeName}`, { timeout: 120_000 }, () => {
    let c: EchoClient;
    before(() => {
      c = client(mode, outbound);
    });

    it('carries a unary call with metadata both ways', async () => {
      const out = await unaryCall(
        c,
        { message: 'hello' },
        { metadata: { 'x-echo': 'from-client' }, deadlineMs: CALL_DEADLINE_MS },
      );
      assert.equal(out.status.code, grpc.status.OK, out.status.details);
      assert.deepEqual(out.replies, [{ message: 'hello', index: 0 }]);
      // The app copies the request's x-echo into both: proof that it arrived, and that both came back.
      assert.deepEqual(out.initialMetadata?.get('x-echo'), ['from-client']);
      assert.deepEqual(out.status.metadata.get('x-echo'), ['from-client']);
    });

    it('streams 100 messages from the server, in order, with trailing metadata', async () => {
      const out = await serverStreamCall(
        c,
        { message: 'm', count: 100 },
        { metadata: { 'x-echo': 'stream' }, deadlineMs: CALL_DEADLINE_MS },
      );
      assert.equal(out.status.code, grpc.status.OK, out.status.details);
      assert.deepEqual(
        out.replies.map((r) => r.index),
        Array.from({ length: 100 }, (_, i) => i),
      );
      assert.deepEqual(out.initialMetadata?.get('x-echo'), ['stream']);
      assert.deepEqual(out.status.metadata.get('x-echo'), ['stream']);
    });

    it('streams 50 messages from the client', async () => {
      const md = new grpc.Metadata();
      md.add('x-echo', 'client-stream');
      const parts = Array.from({ length: 50 }, (_, i) => `p${i};`);
      const out = await clientStreamCall(c, parts, md);
      assert.equal(out.status.code, grpc.status.OK, out.status.details);
      assert.deepEqual(out.replies, [{ message: parts.join(''), index: 50 }]);
      assert.deepEqual(out.status.metadata.get('x-echo'), ['client-stream']);
    });

    it('carries an interleaved bidi stream: each reply arrives before the next request is sent', async () => {
      const md = new grpc.Metadata();
      md.add('x-echo', 'bidi');
      const call = c.Bidi(md, { deadline: Date.now() + CALL_DEADLINE_MS });
      const replies = replyQueue(call);
      const status = statusOf(call);
      for (let i = 0; i < 20; i++) {
        call.write({ message: `ping ${i}` });
        assert.deepEqual(await replies.next(), { message: `ping ${i}`, index: i });
      }
      call.end();
      const s = await status;
      assert.equal(s.code, grpc.status.OK, s.details);
      assert.deepEqual(s.metadata.get('x-echo'), ['bidi']);
    });

    it('ends a call past its deadline with DEADLINE_EXCEEDED, and keeps serving', async () => {
      const started = performance.now();
      const late = await unaryCall(c, { message: 'late', delayMs: 5000 }, { deadlineMs: 200 });
      const elapsedMs = performance.now() - started;
      assert.equal(late.status.code, grpc.status.DEADLINE_EXCEEDED, late.status.details);
      assert.ok(elapsedMs < 3000, `the deadline ended the call after ${elapsedMs.toFixed(0)} ms`);
      const next = await unaryCall(c, { message: 'after' }, { deadlineMs: CALL_DEADLINE_MS });
      assert.equal(next.status.code, grpc.status.OK, next.status.details);
      assert.deepEqual(next.replies, [{ message: 'after', index: 0 }]);
    });

    it("passes the app's trailers-only error with its exact code, message and metadata", async () => {
      const out = await unaryCall(
        c,
        { message: 'x', failCode: grpc.status.PERMISSION_DENIED },
        { metadata: { 'x-echo': 'failing' }, deadlineMs: CALL_DEADLINE_MS },
      );
      assert.equal(out.status.code, grpc.status.PERMISSION_DENIED, out.status.details);
      assert.equal(out.status.details, 'requested failure');
      assert.deepEqual(out.replies, []);
      assert.equal(out.initialMetadata, undefined, 'still trailers-only after two proxies');
      assert.deepEqual(out.status.metadata.get('x-echo'), ['failing']);
      assert.deepEqual(
        out.status.metadata.get('weft-proxy-error'),
        [],
        "the app's own error is not relabelled",
      );
    });

    it('answers an app that is down with UNAVAILABLE and weft-proxy-error', async () => {
      const out = await unaryCall(
        client(mode, outbound, DOWN),
        { message: 'x' },
        {
          deadlineMs: CALL_DEADLINE_MS,
        },
      );
      assert.equal(out.status.code, grpc.status.UNAVAILABLE, out.status.details);
      assert.deepEqual(out.status.metadata.get('weft-proxy-error'), ['connect failed']);
      assert.match(out.status.details, /^weft proxy: connect to 127\.0\.0\.1:\d+ failed: ECONNREFUSED$/);
    });

    it('answers a destination without endpoints with UNAVAILABLE', async () => {
      const out = await unaryCall(
        client(mode, outbound, EMPTY),
        { message: 'x' },
        {
          deadlineMs: CALL_DEADLINE_MS,
        },
      );
      assert.equal(out.status.code, grpc.status.UNAVAILABLE, out.status.details);
      assert.deepEqual(out.status.metadata.get('weft-proxy-error'), ['no endpoints']);
      assert.equal(out.status.details, `weft proxy: no endpoints for ${EMPTY}`);
    });

    it('answers the proxy response timeout with DEADLINE_EXCEEDED, and keeps serving', async () => {
      const c2 = client(mode, timeoutOutbound);
      const started = performance.now();
      const out = await unaryCall(c2, { message: 'slow', delayMs: 5000 }, { deadlineMs: CALL_DEADLINE_MS });
      const elapsedMs = performance.now() - started;
      assert.equal(out.status.code, grpc.status.DEADLINE_EXCEEDED, out.status.details);
      assert.deepEqual(out.status.metadata.get('weft-proxy-error'), ['response timeout']);
      assert.equal(out.status.details, `weft proxy: no response within ${RESPONSE_TIMEOUT_MS} ms`);
      assert.ok(elapsedMs < 4000, `timed out after ${elapsedMs.toFixed(0)} ms`);
      const fast = await unaryCall(c2, { message: 'fast' }, { deadlineMs: CALL_DEADLINE_MS });
      assert.equal(fast.status.code, grpc.status.OK, fast.status.details);
    });
  });
}

describe('gRPC metrics', () => {
  it('counts every gRPC outcome under its grpc_status, where it was decided', async () => {
    const [out, inb, down, timeouts] = await Promise.all(
      [outbound, inbound, downInbound, timeoutOutbound].map((p) => p.metrics()),
    );
    // One call per client mode for each case.
    const appFailure = { authority: AUTHORITY, classification: 'failure', grpc_status: '7' };
    assert.equal(sampleSum(out, 'response_total', appFailure), 2, out);
    assert.equal(sampleSum(inb, 'response_total', appFailure), 2, inb);
    const noEndpoints = { direction: 'outbound', grpc_status: '14', error: 'no endpoints' };
    assert.equal(sampleSum(out, 'response_total', noEndpoints), 2, out);
    const refused = { direction: 'inbound', grpc_status: '14', error: 'connect failed' };
    assert.equal(sampleSum(down, 'response_total', refused), 2, down);
    const timedOut = { direction: 'outbound', grpc_status: '4', error: 'response timeout' };
    assert.equal(sampleSum(timeouts, 'response_total', timedOut), 2, timeouts);
  });
});

/** Runs a ClientStream call sending `parts` in order; resolves with the outcome (never rejects for a status). */
function clientStreamCall(
  c: EchoClient,
  parts: string[],
  md: grpc.Metadata,
): Promise<CallOutcome<EchoReply>> {
  return new Promise((resolve) => {
    const replies: EchoReply[] = [];
    let status: grpc.StatusObject | undefined;
    let replied = false;
    const maybeDone = () => status && replied && resolve({ status, initialMetadata: undefined, replies });
    const call = c.ClientStream(md, { deadline: Date.now() + CALL_DEADLINE_MS }, (_err, reply) => {
      if (reply) replies.push(reply);
      replied = true;
      maybeDone();
    });
    call.on('status', (s: grpc.StatusObject) => {
      status = s;
      maybeDone();
    });
    for (const message of parts) call.write({ message });
    call.end();
  });
}

/** The final status of a streaming call. */
function statusOf(call: grpc.ClientDuplexStream<EchoRequest, EchoReply>): Promise<grpc.StatusObject> {
  call.on('error', () => {}); // the status carries it
  return new Promise((resolve) => call.on('status', resolve));
}

/** Replies of a duplex call, one at a time; `next()` rejects if the call ends first. */
function replyQueue(call: grpc.ClientDuplexStream<EchoRequest, EchoReply>) {
  const ready: EchoReply[] = [];
  let waiter: { resolve(r: EchoReply): void; reject(e: Error): void } | undefined;
  let ended: Error | undefined;
  call.on('data', (r: EchoReply) => {
    if (waiter) {
      waiter.resolve(r);
      waiter = undefined;
    } else ready.push(r);
  });
  const end = (why: string) => () => {
    ended ??= new Error(`the call ended (${why}) before the expected reply`);
    waiter?.reject(ended);
    waiter = undefined;
  };
  call.on('end', end('end'));
  call.on('error', end('error'));
  return {
    next(): Promise<EchoReply> {
      const r = ready.shift();
      if (r) return Promise.resolve(r);
      if (ended) return Promise.reject(ended);
      return new Promise((resolve, reject) => (waiter = { resolve, reject }));
    },
  };
}
