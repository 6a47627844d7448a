import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError } from '../../lib/errors.js';
import { loadRunConfig } from './run-config.js';

describe('weft run configuration', () => {
  it('fills the defaults and freezes the result', () => {
    const c = loadRunConfig({ WEFT_RUN_SERVICE: 'books', WEFT_RUN_UPSTREAMS: 'db=0,authors:7001=7001' }, [
      'node',
      'app.js',
    ]);
    assert.equal(c.service, 'books');
    assert.equal(c.port, undefined);
    assert.equal(c.namespace, 'default');
    assert.deepEqual(c.apiAddr, { host: '127.0.0.1', port: 8084 });
    assert.deepEqual(c.destinationAddr, { host: '127.0.0.1', port: 8086 });
    assert.deepEqual(c.upstreams, [
      { name: 'db', localPort: 0 },
      { name: 'authors:7001', localPort: 7001 },
    ]);
    assert.deepEqual(c.command, ['node', 'app.js']);
    assert.ok(Object.isFrozen(c) && Object.isFrozen(c.command));
  });

  it('reports every problem at once', () => {
    assert.throws(
      () => loadRunConfig({ WEFT_RUN_PORT: '70000', WEFT_RUN_ACCOUNT: 'Bad_Name' }, []),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.deepEqual(err.problems, [
          'WEFT_RUN_SERVICE (--service): required',
          'the command to run (after --): required',
          'WEFT_RUN_PORT="70000": expected an integer from 1 to 65535',
          'WEFT_RUN_ACCOUNT="Bad_Name": expected a DNS-1123 label (a-z, 0-9 and "-", at most 63)',
        ]);
        return true;
      },
    );
  });
});
