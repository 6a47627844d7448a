import assert from 'node:assert/strict';
import { PassThrough, Readable } from 'node:stream';
import { test } from 'node:test';
import { ConnectError, ConnectTimeoutError, PeerError } from '../../lib/errors.js';
import type { RequestHead, Send, SendHooks, UpstreamResponse } from '../http/exchange.js';
import type { HttpSeries } from '../metrics/proxy-metrics.js';
import { type Attempt, connectRetryRoute } from './connect-retry.js';

const noHooks: SendHooks = {
  onInformational: () => {},
  requestTrailers: () => undefined,
  onCancel: () => {},
};

function head(hasBody = false, method = 'GET'): RequestHead {
  return {
    method,
    scheme: 'http',
    authority: 'svc:80',
    path: '/',
    headers: {},
    origProto: 'HTTP/1.1',
    hasBody,
    grpc: false,
    timeoutMs: 0,
  };
}

/** A series that records which responses it saw. */
function series(name: string, seen: string[]): HttpSeries {
  return {
    request: { inc: () => seen.push(`${name} request`) } as HttpSeries['request'],
    response: (status) => ({ observe: () => seen.push(`${name} ${status}`) }),
  };
}

const ok: Send = async () =>
  ({ status: 200, headers: {}, body: Readable.from([]), trailers: () => undefined }) as UpstreamResponse;

test('a connect failure is sent once to the other endpoint, whose series records the response', async () => {
  for (const err of [new ConnectError('a', undefined), new ConnectTimeoutError('a', 5)]) {
    const seen: string[] = [];
    let retries = 0;
    const b: Attempt = { series: series('b', seen), send: ok };
    const routed = connectRetryRoute(
      { series: series('a', seen), send: () => Promise.reject(err) },
      () => b,
      () => retries++,
    );
    routed.series.request.inc();
    const res = await routed.send(head(true, 'POST'), null, noHooks);
    routed.series.response(res.status, undefined, undefined).observe(1);
    assert.deepEqual(seen, ['a request', 'b 200']);
    assert.equal(retries, 1);
  }
});

test('no retry after other failures, without another endpoint, once the body was read, or twice', async () => {
  const refused = new ConnectError('a', undefined);
  const fail = (err: unknown): Attempt => ({ series: series('x', []), send: () => Promise.reject(err) });
  let nexts = 0;
  const next = () => {
    nexts++;
    return fail(new ConnectError('b', undefined));
  };
  const reset = new PeerError('reset');
  await assert.rejects(connectRetryRoute(fail(reset), next, () => {}).send(head(), null, noHooks), reset);
  assert.equal(nexts, 0, 'a reset may have reached the app: not retried here');
  await assert.rejects(
    connectRetryRoute(
      fail(refused),
      () => undefined,
      () => {},
    ).send(head(), null, noHooks),
    refused,
  );
  const body = new PassThrough();
  body.end('x');
  body.read(); // a byte of the body is gone
  await assert.rejects(
    connectRetryRoute(fail(refused), next, () => {}).send(head(true, 'POST'), body, noHooks),
    refused,
  );
  assert.equal(nexts, 0);
  await assert.rejects(
    connectRetryRoute(fail(refused), next, () => {}).send(head(), null, noHooks),
    /connect to b failed/,
    'the second failure is the answer',
  );
  assert.equal(nexts, 1);
});
