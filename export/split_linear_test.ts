import assert from "node:assert/strict";
import { splitCount, UnevenSplitError } from "./split_linear.ts";

/**
 * Upstream's rule restated as a table (executorch examples/apple/coreml/llama/utils.py,
 * `_get_split_sizes`): [out, target, maxSplits] -> parts.
 */
const cases: [number, number, number, number][] = [
  [2048, 1024, 8, 2], // Llama 3.2 1B wq
  [512, 1024, 8, 1], // smaller than the target: never split
  [8192, 1024, 8, 8], // the FFN hidden size
  [128256, 1024, 8, 8], // the Llama 3 vocabulary: 8 x 16032
  [14336, 1024, 8, 8],
  [4096, 1024, 2, 2], // capped by max_splits
  [3072, 1000, 8, 3], // floor(3072 / 1000) = 3
];

Deno.test("splitCount() follows the upstream rule", () => {
  for (const [out, target, max, parts] of cases) {
    assert.equal(splitCount("w", out, target, max), parts, `${out} / ${target} max ${max}`);
  }
});

Deno.test("splitCount() rejects an uneven split with a fix", () => {
  // 100 // 1 = 100 parts, capped at 8; 100 % 8 = 4 leaves a remainder.
  assert.throws(() => splitCount("layers.0.attention.wq.weight", 100, 1, 8), (e) => {
    assert.ok(e instanceof UnevenSplitError);
    assert.match(
      e.message,
      /"layers\.0\.attention\.wq\.weight": 100 output features do not divide into 8/,
    );
    assert.match(e.message, /choose a --target_split_size or --max_splits/);
    return true;
  });
  assert.throws(() => splitCount("w", 1000, 300, 8), UnevenSplitError);
});
