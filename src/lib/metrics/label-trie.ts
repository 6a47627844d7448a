/**
 * A trie over (label name, label value) pairs, in the key order of the labels object, so that finding
 * a known label set builds no string and allocates nothing: a few Map lookups of strings whose hashes
 * V8 has usually cached already.
 */

/** A position in the trie: one more pair than its parent. Returned by set() to delete() it later. */
export interface TrieNode<T> {
  readonly parent: TrieNode<T> | undefined;
  readonly name: string;
  readonly value: string;
  /** name → value → child node; undefined while the node has no children. */
  edges: Map<string, Map<string, TrieNode<T>>> | undefined;
  item: T | undefined;
}

/** Items keyed by ordered label pairs; `{a, b}` and `{b, a}` are different paths. */
export class LabelTrie<T> {
  private readonly root: TrieNode<T> = newNode(undefined, '', '');
  /** How many paths hold an item. */
  size = 0;

  get(labels: Readonly<Record<string, string>>): T | undefined {
    let node = this.root;
    for (const name in labels) {
      const next = node.edges?.get(name)?.get(labels[name]);
      if (next === undefined) return undefined;
      node = next;
    }
    return node.item;
  }

  /** Stores `item` at the path of `labels` (replacing any) and returns its node. */
  set(labels: Readonly<Record<string, string>>, item: T): TrieNode<T> {
    let node = this.root;
    for (const name in labels) {
      const value = labels[name];
      node.edges ??= new Map();
      let byValue = node.edges.get(name);
      if (byValue === undefined) node.edges.set(name, (byValue = new Map()));
      let next = byValue.get(value);
      if (next === undefined) byValue.set(value, (next = newNode(node, name, value)));
      node = next;
    }
    if (node.item === undefined) this.size++;
    node.item = item;
    return node;
  }

  /** Removes the item at `node`, then every ancestor left with neither item nor children. */
  delete(node: TrieNode<unknown>): void {
    if (node.item === undefined) return;
    node.item = undefined;
    this.size--;
    let at = node;
    while (at.parent !== undefined && at.item === undefined && at.edges === undefined) {
      const parent = at.parent;
      const byValue = parent.edges?.get(at.name);
      byValue?.delete(at.value);
      if (byValue?.size === 0) parent.edges?.delete(at.name);
      if (parent.edges?.size === 0) parent.edges = undefined;
      at = parent;
    }
  }
}

function newNode<T>(parent: TrieNode<T> | undefined, name: string, value: string): TrieNode<T> {
  return { parent, name, value, edges: undefined, item: undefined };
}
