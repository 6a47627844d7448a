import assert from 'node:assert/strict';
import { test } from 'node:test';
import { splitLinks } from './downstream-h1.js';

test('a Link field splits at the commas between links, not at those inside <> or quoted strings', () => {
  assert.deepEqual(splitLinks('</a.css>; rel=preload; as=style, </b.js>; rel=preload; as=script'), [
    '</a.css>; rel=preload; as=style',
    '</b.js>; rel=preload; as=script',
  ]);
  assert.deepEqual(splitLinks('</x,y>; rel=preload, </z>; title="a, \\"b\\", c"; rel=next ,'), [
    '</x,y>; rel=preload',
    '</z>; title="a, \\"b\\", c"; rel=next',
  ]);
  assert.deepEqual(splitLinks(' , '), []);
});
