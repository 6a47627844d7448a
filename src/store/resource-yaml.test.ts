import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseResourcesYaml } from './resource-yaml.js';
import { formatProblem, ValidationError } from './store-error.js';

/** The formatted problems of the ValidationError parsing `text` as `file` throws. */
function problemsOf(file: string, text: string): string[] {
  try {
    parseResourcesYaml(file, text);
  } catch (err) {
    assert.ok(err instanceof ValidationError, `expected a ValidationError, got ${err}`);
    assert.equal(err.code, 'WEFT_ERR_INVALID_RESOURCE');
    return err.problems.map(formatProblem);
  }
  assert.fail('no error thrown');
}

describe('parseResourcesYaml', () => {
  it('reads every document of a file in order, skipping empty ones', () => {
    const text = [
      '---',
      'apiVersion: weft.io/v1alpha1',
      'kind: Service',
      'metadata: { name: books, namespace: shop }',
      'spec:',
      '  ports: [{ port: 7002, protocol: grpc }]',
      '---',
      '# nothing here',
      '---',
      'apiVersion: weft.io/v1alpha1',
      'kind: Workload',
      'metadata: { name: books-0, namespace: shop }',
      'spec: { service: books, address: 127.0.0.1, port: 4143 }',
    ].join('\n');
    const rs = parseResourcesYaml('books.yaml', text);
    assert.deepEqual(
      rs.map((r) => `${r.kind} ${r.metadata.namespace}/${r.metadata.name}`),
      ['Service shop/books', 'Workload shop/books-0'],
    );
    assert.deepEqual(parseResourcesYaml('empty.yaml', ''), []);
  });

  it('names the file, line and field of every problem and returns nothing', () => {
    const text = [
      'apiVersion: weft.io/v1alpha1', // 1
      'kind: Service', // 2
      'metadata:', // 3
      '  name: books', // 4
      'spec:', // 5
      '  ports:', // 6
      '    - port: 70000', // 7
      '      protocol: http', // 8
      '---', // 9
      'apiVersion: weft.io/v1alpha1', // 10
      'kind: Workload', // 11
      'metadata:', // 12
      '  name: books-0', // 13
      'spec:', // 14
      '  address: 127.0.0.1', // 15
      '---', // 16
      'apiVersion: weft.io/v1alpha1', // 17
      'kind: Gadget', // 18
      'metadata: { name: g }', // 19
      'spec: {}', // 20
      '---', // 21
      'apiVersion: weft.io/v1alpha1', // 22
      'kind: Service', // 23
      'metadata: { name: fine }', // 24
      'spec: { ports: [{ port: 80 }] }', // 25
    ].join('\n');
    assert.deepEqual(problemsOf('books.yaml', text), [
      'books.yaml:7: spec.ports[0].port: must be an integer 1-65535',
      'books.yaml:15: spec.service: must be a DNS-1123 label (lower case a-z, 0-9 and "-", at most 63 characters)',
      'books.yaml:18: kind: must be one of Service, Workload, Server, AuthorizationPolicy, Profile, HTTPRoute, GRPCRoute, Namespace',
    ]);
  });

  it('reports YAML syntax errors and duplicates with their lines', () => {
    const bad = [
      'apiVersion: weft.io/v1alpha1',
      'kind: Service',
      'metadata: { name: [oops }',
      'spec: {}',
    ].join('\n');
    const [problem, ...rest] = problemsOf('bad.yaml', bad);
    assert.match(problem, /^bad\.yaml:3: /);
    assert.deepEqual(rest, []);
    const svc =
      'apiVersion: weft.io/v1alpha1\nkind: Service\nmetadata: { name: a }\nspec: { ports: [{ port: 80 }] }\n';
    assert.deepEqual(problemsOf('dup.yaml', `${svc}---\n${svc}`), [
      'dup.yaml:6: Service default/a is defined twice (first on line 1)',
    ]);
    assert.deepEqual(problemsOf('keys.yaml', `${svc}kind: Service\n`), [
      'keys.yaml:5: Map keys must be unique',
    ]);
  });
});
