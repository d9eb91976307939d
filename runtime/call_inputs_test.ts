import assert from "node:assert/strict";
import { KvCache } from "./kv_cache.ts";
import { buildCallInputs, causalVisibility } from "./call_inputs.ts";
import { MASK_HIDDEN } from "../bundle/io_names.ts";
import { inWindow } from "../llama/attention_window.ts";

// Four slots for a model trained on 64 positions: one keeps the first token, three slide.
const shape = {
  layers: 1,
  kvHeads: 1,
  cacheLength: 4,
  headDim: 2,
  dtype: "fp32",
  trainedContext: 64,
} as const;

/** The mask as "." (visible, 0) and "x" (hidden, MASK_HIDDEN); any other value shows as "?". */
function maskPattern(mask: ArrayLike<number>): string {
  return Array.from(mask, (v) => (v === 0 ? "." : v === MASK_HIDDEN ? "x" : "?")).join("");
}

Deno.test("buildCallInputs() masks unfilled cache slots and future call slots", () => {
  const cache = new KvCache(shape);
  const entry = [new Float32Array(2)];
  cache.commit(entry, entry, 1, [0]);
  const freqs = new Float64Array([1]);
  const inputs = buildCallInputs(cache, freqs, { tokens: [7, 8], callLength: 3 });
  assert.deepEqual([...inputs.get("tokens")!], [7, 8, 0]);
  const mask = maskPattern(inputs.get("mask")!);
  // rows of (4 cache slots | 3 call slots)
  assert.equal(mask, [".xxx" + ".xx", ".xxx" + "..x", ".xxx" + "..."].join(""));
  // positions 1, 2, 3 with f = 1 rad per position
  assert.deepEqual([...inputs.get("freqs_cos")!], [1, 2, 3].map((p) => Math.fround(Math.cos(p))));
});

Deno.test("buildCallInputs() uses custom positions and visibility", () => {
  const cache = new KvCache({ ...shape, dtype: "fp16" });
  const visibility = causalVisibility(2);
  visibility[2] = 0; // row 1 no longer sees slot 0
  const inputs = buildCallInputs(cache, new Float64Array([0.5]), {
    tokens: [1, 2],
    callLength: 2,
    positionOffsets: [0, 5],
    visibility,
  });
  assert.ok(inputs.get("mask") instanceof Float16Array);
  const mask = maskPattern(inputs.get("mask")!);
  assert.equal(mask, "xxxx.x" + "xxxxx.");
  assert.equal(inputs.get("freqs_sin")![1], new Float16Array([Math.sin(2.5)])[0]);
  assert.throws(
    () => buildCallInputs(cache, new Float64Array([1]), { tokens: [1, 2, 3], callLength: 2 }),
    RangeError,
  );
});

Deno.test("buildCallInputs() keeps every row inside its window: the first token, 3 before", () => {
  const cache = new KvCache(shape);
  const entry = [new Float32Array(2 * 6)];
  cache.commit(entry, entry, 6, [0, 1, 2, 3, 4, 5]);
  // Position 0 keeps slot 0, positions 3, 4, 5 sit in slots 3, 1, 2; the call covers 6, 7, 8.
  const mask = maskPattern(
    buildCallInputs(cache, new Float64Array([1]), { tokens: [1, 2, 3], callLength: 3 }).get(
      "mask",
    )!,
  );
  assert.equal(
    mask,
    [
      "...." + ".xx", // position 6 sees 0 and 3..5
      "...x" + "..x", // position 7 no longer sees 3 (slot 3)
      ".x.x" + "...", // position 8 no longer sees 3 and 4 (slot 1)
    ].join(""),
  );
});

Deno.test("buildCallInputs() shows each row exactly the tokens in its window", () => {
  // Calls of random lengths through caches of several sizes, for models trained on more or fewer
  // positions or on an unknown number; each slot's key holds its token's position + 1. The visible
  // set must be the window's, independently of where the cache put each token.
  let seed = 7;
  const random = (n: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
  const cases = [[3, undefined], [4, 10], [8, 30], [8, 8], [20, undefined], [20, 1000]] as const;
  for (const [cacheLength, trainedContext] of cases) {
    const cache = new KvCache({ ...shape, cacheLength, trainedContext });
    for (let call = 0; call < 40; call++) {
      const callLength = 1 + random(9);
      const real = 1 + random(callLength);
      const position = cache.position;
      const mask = buildCallInputs(cache, new Float64Array([1]), {
        tokens: Array(real).fill(1),
        callLength,
      }).get("mask")!;
      const width = cacheLength + callLength;
      for (let row = 0; row < real; row++) {
        const query = position + row;
        const seen = [];
        for (let slot = 0; slot < cache.filledSlots; slot++) {
          if (mask[row * width + slot] === 0) seen.push(cache.keys[0]![slot * 2]! - 1);
        }
        for (let col = 0; col < callLength; col++) {
          if (mask[row * width + cacheLength + col] === 0) seen.push(position + col);
        }
        const expected = Array.from({ length: query + 1 }, (_, key) => key)
          .filter((key) => inWindow(cache.window, query, key));
        const what = `C ${cacheLength}, trained on ${trainedContext}, token ${query}`;
        assert.deepEqual(seen.sort((a, b) => a - b), expected, what);
      }
      const keys = new Float32Array(callLength * 2);
      for (let e = 0; e < real; e++) keys.fill(position + e + 1, e * 2, e * 2 + 2);
      cache.commit([keys], [keys], callLength, Array.from({ length: real }, (_, e) => e));
    }
    assert.ok(cache.position > 3 * cacheLength, "the sequence outgrows the cache");
  }
});
