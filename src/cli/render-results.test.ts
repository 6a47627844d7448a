import { describe, it } from 'node:test';
import { assertGolden } from '../../test/support/golden.js';
import type { ApplyResult } from '../lib/api-client.js';
import type { Resource } from '../store/resource.js';
import {
  renderApiProblems,
  renderApplyResults,
  renderDeleted,
  renderFileProblems,
} from './render-results.js';

const svc = (name: string, namespace = 'shop') =>
  ({
    apiVersion: 'weft.io/v1alpha1',
    kind: 'Service',
    metadata: { name, namespace },
    spec: { ports: [{ port: 80 }] },
  }) as Resource;

describe('render results', () => {
  it('renders what apply and delete did (golden)', () => {
    const results: ApplyResult[] = [
      { index: 0, action: 'created', resource: svc('books') },
      { index: 1, action: 'configured', resource: svc('authors') },
      { index: 2, action: 'unchanged', resource: svc('books', 'other') },
    ];
    assertGolden('apply-results.txt', renderApplyResults(results) + renderDeleted(svc('books')));
  });

  it('renders every problem with file, line and field (golden)', () => {
    assertGolden(
      'apply-problems.txt',
      renderFileProblems([
        {
          file: 'shop/books.yaml',
          line: 7,
          path: 'spec.ports[0].port',
          message: 'must be an integer 1-65535',
        },
        {
          file: 'shop/books.yaml',
          line: 12,
          path: '',
          message: 'Service shop/books is defined twice (first on line 1)',
        },
        { file: 'missing.yaml', path: '', message: 'no such file or directory' },
      ]) +
        renderApiProblems(
          [
            { index: 1, path: 'spec.address', message: 'must be an IP address or a host name' },
            { index: 5, path: '', message: 'Service shop/x is also resources[0]' },
          ],
          ['a.yaml: Service shop/a', 'b.yaml: Workload shop/b-0'],
        ),
    );
  });
});
