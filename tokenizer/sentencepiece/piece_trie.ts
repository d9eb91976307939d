/**
 * A trie over the UTF-16 code units of vocabulary strings, for the two places SentencePiece
 * needs every vocabulary entry that starts at a position: user-defined symbols (longest match)
 * and the unigram lattice (all matches). Matching code units is matching code points, and so
 * matching sentencepiece's UTF-8 bytes, because every key is a well-formed string.
 *
 * @module
 */

// Child links of every node in one map keyed by `node * 2^16 + code unit`: far fewer objects
// than a map per node, and node counts stay well below 2^37, so keys are exact integers.
const UNITS = 0x10000;

/** Strings mapped to ids, searched by prefix. */
export class PieceTrie {
  readonly #children = new Map<number, number>();
  // values[node] is the id of the key ending at node, or -1.
  readonly #values: number[] = [-1];

  /** @param entries key and id pairs; keys must be non-empty */
  constructor(entries: Iterable<readonly [string, number]>) {
    for (const [key, id] of entries) {
      let node = 0;
      for (let i = 0; i < key.length; i++) {
        const edge = node * UNITS + key.charCodeAt(i);
        let child = this.#children.get(edge);
        if (child === undefined) {
          child = this.#values.length;
          this.#values.push(-1);
          this.#children.set(edge, child);
        }
        node = child;
      }
      this.#values[node] = id;
    }
  }

  /** Whether the trie has no keys. */
  get empty(): boolean {
    return this.#values.length === 1;
  }

  /**
   * Calls `visit(end, id)` for every key equal to `text.slice(start, end)`, shortest first.
   */
  forEachPrefix(text: string, start: number, visit: (end: number, id: number) => void): void {
    let node = 0;
    for (let i = start; i < text.length; i++) {
      const child = this.#children.get(node * UNITS + text.charCodeAt(i));
      if (child === undefined) return;
      node = child;
      const id = this.#values[node]!;
      if (id >= 0) visit(i + 1, id);
    }
  }

  /** Length in code units of the longest key that `text` has at `start`, or 0. */
  longestPrefix(text: string, start: number): number {
    let longest = 0;
    let node = 0;
    for (let i = start; i < text.length; i++) {
      const child = this.#children.get(node * UNITS + text.charCodeAt(i));
      if (child === undefined) break;
      node = child;
      if (this.#values[node]! >= 0) longest = i + 1 - start;
    }
    return longest;
  }
}
