import assert from 'node:assert/strict';
import { AsyncLocalStorage, AsyncResource } from 'node:async_hooks';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { installLeanAsyncBind } from './lean-async-bind.js';

installLeanAsyncBind();

test('a bound function runs in the resource scope it was bound in, with its this and arguments', () => {
  const als = new AsyncLocalStorage<string>();
  const resource = als.run('bound-here', () => new AsyncResource('T'));
  const fn = als.run('elsewhere', () =>
    resource.bind(function (this: unknown, a: number, b: number) {
      return { ctx: als.getStore(), self: this, sum: a + b };
    }),
  );
  const self = { me: 1 };
  const r = fn.call(self, 1, 2);
  assert.equal(r.ctx, 'bound-here');
  assert.equal(r.self, self);
  assert.equal(r.sum, 3);
  // @types/node leaves out bind's thisArg, which Node has always taken.
  const bindWithThis = resource.bind as unknown as (fn: () => unknown, thisArg: unknown) => () => unknown;
  const withThis = bindWithThis.call(
    resource,
    function (this: unknown) {
      return this;
    },
    self,
  );
  assert.equal(withThis(), self);
});

test('binding something that is not a function still fails as Node makes it fail', () => {
  const resource = new AsyncResource('T');
  assert.throws(() => resource.bind(42 as unknown as () => void), { code: 'ERR_INVALID_ARG_TYPE' });
});

let server: http2.Http2Server;
let port = 0;
before(async () => {
  server = http2.createServer();
  server.on('stream', (stream) => {
    stream.respond({ ':status': 200 });
    stream.end('ok');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});
after(() => server.close());

test('HTTP/2 client requests keep the caller context across a pending connect', async () => {
  const als = new AsyncLocalStorage<number>();
  const session = http2.connect(`http://127.0.0.1:${port}`);
  try {
    // Requested before the session is connected: Node runs the bound request later, on connect.
    const seen = await Promise.all(
      [1, 2, 3].map((n) =>
        als.run(
          n,
          () =>
            new Promise<number | undefined>((resolve, reject) => {
              const req = session.request({ ':path': '/' });
              req.on('response', () => resolve(als.getStore()));
              req.on('error', reject);
              req.resume();
            }),
        ),
      ),
    );
    assert.deepEqual(seen, [1, 2, 3]);
  } finally {
    session.close();
  }
});
