/**
 * The byte-pair merge loop both BPE tokenizers share: SentencePiece's BPE model (highest score
 * first) and tiktoken (lowest rank first) differ only in how a pair is ranked. Merging the best
 * pair, leftmost on ties, then re-ranking its two new neighbours is done with a priority queue
 * and a linked list, so a segment of n symbols costs O(n log n) rather than the O(n²) of
 * rescanning, which matters for long runs such as a megabyte of spaces or of CJK text.
 *
 * @module
 */

/**
 * Ranks merging `left` with `right`: lower merges first; undefined when the vocabulary has no
 * such merged symbol.
 */
export type PairRank = (left: string, right: string) => number | undefined;

/**
 * A binary min-heap of candidate merges ordered by (rank, left index). Candidates live in
 * append-only columns and the heap holds their indices.
 */
class MergeQueue {
  readonly rank: number[] = [];
  readonly left: number[] = [];
  readonly right: number[] = [];
  /** Length of the merged symbol when queued: it tells stale candidates from live ones. */
  readonly length: number[] = [];
  readonly #heap: number[] = [];

  get size(): number {
    return this.#heap.length;
  }

  push(rank: number, left: number, right: number, length: number): void {
    const entry = this.rank.length;
    this.rank.push(rank);
    this.left.push(left);
    this.right.push(right);
    this.length.push(length);
    const heap = this.#heap;
    let i = heap.length;
    heap.push(entry);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.#before(entry, heap[parent]!)) break;
      heap[i] = heap[parent]!;
      i = parent;
    }
    heap[i] = entry;
  }

  /** Removes the best candidate and returns its entry index. The queue must not be empty. */
  pop(): number {
    const heap = this.#heap;
    const top = heap[0]!;
    const last = heap.pop()!;
    if (heap.length > 0) {
      let i = 0;
      for (;;) {
        let child = 2 * i + 1;
        if (child >= heap.length) break;
        if (child + 1 < heap.length && this.#before(heap[child + 1]!, heap[child]!)) child++;
        if (!this.#before(heap[child]!, last)) break;
        heap[i] = heap[child]!;
        i = child;
      }
      heap[i] = last;
    }
    return top;
  }

  #before(a: number, b: number): boolean {
    const ra = this.rank[a]!, rb = this.rank[b]!;
    return ra < rb || (ra === rb && this.left[a]! < this.left[b]!);
  }
}

/**
 * Merges adjacent symbols by rank until no ranked pair is left and returns the final symbols in
 * order. `frozen[i]` marks a symbol that never merges (SentencePiece's user-defined symbols).
 */
export function mergePairs(
  symbols: readonly string[],
  rankOf: PairRank,
  frozen?: readonly boolean[],
): string[] {
  const count = symbols.length;
  if (count < 2) return symbols.slice();
  const symbol = symbols.slice();
  const prev = new Int32Array(count);
  const next = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    prev[i] = i - 1;
    next[i] = i + 1 < count ? i + 1 : -1;
  }
  const queue = new MergeQueue();
  const consider = (left: number, right: number) => {
    if (left < 0 || right < 0 || frozen?.[left] || frozen?.[right]) return;
    const rank = rankOf(symbol[left]!, symbol[right]!);
    if (rank !== undefined) {
      queue.push(rank, left, right, symbol[left]!.length + symbol[right]!.length);
    }
  };
  for (let i = 1; i < count; i++) consider(i - 1, i);

  while (queue.size > 0) {
    const entry = queue.pop();
    const left = queue.left[entry]!, right = queue.right[entry]!;
    const leftSymbol = symbol[left]!, rightSymbol = symbol[right]!;
    // Symbols only grow or vanish, so an unchanged total length means neither side has merged
    // with anything else since this candidate was queued.
    if (
      leftSymbol === "" || rightSymbol === "" ||
      leftSymbol.length + rightSymbol.length !== queue.length[entry]
    ) continue;
    symbol[left] = leftSymbol + rightSymbol;
    symbol[right] = "";
    const after = next[right]!;
    next[left] = after;
    if (after >= 0) prev[after] = left;
    consider(prev[left]!, left);
    consider(left, after);
  }

  const result: string[] = [];
  for (let i = 0; i !== -1; i = next[i]!) result.push(symbol[i]!);
  return result;
}
