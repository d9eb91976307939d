import assert from "node:assert/strict";
import fc from "fast-check";
import { mergePairs } from "./pair_merge.ts";

/**
 * The quadratic loop the heap replaces, as tiktoken's `_byte_pair_merge` runs it: rescan for the
 * lowest-ranked adjacent pair, leftmost on ties, and merge it, until none is ranked.
 */
function naiveMerge(
  symbols: string[],
  rankOf: (a: string, b: string) => number | undefined,
  frozen: boolean[],
): string[] {
  const parts = symbols.map((symbol, i) => ({ symbol, frozen: frozen[i]! }));
  for (;;) {
    let best = -1, bestRank = Infinity;
    for (let i = 0; i + 1 < parts.length; i++) {
      if (parts[i]!.frozen || parts[i + 1]!.frozen) continue;
      const rank = rankOf(parts[i]!.symbol, parts[i + 1]!.symbol);
      if (rank !== undefined && rank < bestRank) {
        best = i;
        bestRank = rank;
      }
    }
    if (best < 0) return parts.map((p) => p.symbol);
    parts.splice(best, 2, { symbol: parts[best]!.symbol + parts[best + 1]!.symbol, frozen: false });
  }
}

Deno.test("mergePairs() merges as the rescanning loop does, ties and frozen ones too", () => {
  const text = fc.string({ unit: fc.constantFrom("a", "b", "c"), minLength: 1, maxLength: 40 });
  fc.assert(
    fc.property(
      text,
      // Ranks drawn from a small range so that equal ranks are common.
      fc.dictionary(
        fc.string({ unit: fc.constantFrom("a", "b", "c"), minLength: 2, maxLength: 5 }),
        fc.integer({ min: 0, max: 4 }),
      ),
      fc.array(fc.boolean(), { maxLength: 40 }),
      (input, ranks, frozenFlags) => {
        const symbols = [...input];
        const frozen = symbols.map((_, i) => frozenFlags[i] ?? false);
        const rankOf = (a: string, b: string) => ranks[a + b];
        assert.deepEqual(mergePairs(symbols, rankOf, frozen), naiveMerge(symbols, rankOf, frozen));
      },
    ),
    { numRuns: 3000 },
  );
});

Deno.test("mergePairs() stays fast on a long run of one symbol", () => {
  const symbols = Array.from({ length: 200_000 }, () => "a");
  const start = performance.now();
  const merged = mergePairs(
    symbols,
    (a, b) => (a.length + b.length <= 8 ? a.length + b.length : undefined),
  );
  // The rescanning loop would take minutes here; the heap takes well under a second.
  assert.ok(performance.now() - start < 5000);
  assert.equal(merged.join(""), symbols.join(""));
});
