import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { appEnv, upstreamEnvName } from './app-env.js';

describe('app environment', () => {
  it('gives PORT, the proxy variables, NO_PROXY for loopback and one variable per upstream', () => {
    const env = appEnv(
      { PATH: '/bin', WEFT_PROXY_APP_PORT: '1', HTTP_PROXY: 'http://elsewhere:1', UNSET: undefined },
      {
        appPort: 8080,
        outbound: '127.0.0.1:4140',
        upstreams: { db: '127.0.0.1:5432', 'books.shop:7002': '127.0.0.1:9' },
      },
    );
    assert.deepEqual(env, {
      PATH: '/bin',
      PORT: '8080',
      HTTP_PROXY: 'http://127.0.0.1:4140',
      http_proxy: 'http://127.0.0.1:4140',
      grpc_proxy: 'http://127.0.0.1:4140',
      NO_PROXY: 'localhost,127.0.0.1',
      no_proxy: 'localhost,127.0.0.1',
      WEFT_UPSTREAM_DB: '127.0.0.1:5432',
      WEFT_UPSTREAM_BOOKS_SHOP_7002: '127.0.0.1:9',
    });
  });

  it('names upstream variables in upper case with _ for anything else', () => {
    assert.equal(upstreamEnvName('my-db.prod:5432'), 'WEFT_UPSTREAM_MY_DB_PROD_5432');
  });
});
