import assert from 'node:assert/strict';
import { test } from 'node:test';
import { earlyHints, splitLinks } from './early-hints.js';

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

test('a 103 keeps the links node:http can write and single-valued fields; none without a link left', () => {
  const ok = '</a.css>; rel=preload; as=style';
  assert.deepEqual(
    earlyHints({
      link: `${ok}, </b.jpg>; rel=preload; imagesrcset="b.jpg 1x, c.jpg 2x", </c>; rel="x y"`,
      'x-hint': 'early',
      'set-cookie': ['a=1', 'b=2'],
    }),
    { link: [ok], 'x-hint': 'early' },
  );
  assert.deepEqual(earlyHints({ link: ['</a>; rel=preload', '</b>; as="style"'] }), {
    link: ['</a>; rel=preload', '</b>; as="style"'],
  });
  assert.equal(earlyHints({ link: '</c>; title="x y"' }), undefined);
  assert.equal(earlyHints({ 'x-hint': 'early' }), undefined);
});
