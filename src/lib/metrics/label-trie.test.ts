import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LabelTrie, type TrieNode } from './label-trie.js';

test('paths are ordered pairs; delete prunes what it leaves empty', () => {
  const trie = new LabelTrie<string>();
  const ab = trie.set({ a: '1', b: '2' }, 'ab');
  const a = trie.set({ a: '1' }, 'a');
  const ba = trie.set({ b: '2', a: '1' }, 'ba');
  assert.equal(trie.get({ a: '1', b: '2' }), 'ab');
  assert.equal(trie.get({ b: '2', a: '1' }), 'ba');
  assert.equal(trie.get({ a: '1' }), 'a');
  assert.equal(trie.get({ a: '2' }), undefined);
  assert.equal(trie.get({}), undefined);
  assert.equal(trie.size, 3);
  trie.delete(a);
  assert.equal(trie.get({ a: '1' }), undefined);
  assert.equal(trie.get({ a: '1', b: '2' }), 'ab', 'a node with children stays');
  trie.delete(ab);
  trie.delete(ba);
  trie.delete(ba);
  assert.equal(trie.size, 0);
  const root = (trie as unknown as { root: TrieNode<string> }).root;
  assert.equal(root.edges, undefined, 'no empty nodes are left behind');
  trie.set({}, 'empty');
  assert.equal(trie.get({}), 'empty');
});
