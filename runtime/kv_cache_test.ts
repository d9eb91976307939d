import assert from "node:assert/strict";
import { KvCache } from "./kv_cache.ts";

// Four slots: one keeps the first token for good (a quarter of the cache), three slide.
const shape = {
  layers: 2,
  kvHeads: 2,
  cacheLength: 4,
  headDim: 2,
  dtype: "fp32",
  trainedContext: 64,
} as const;

/** A call's new keys where entry e of head h in layer l holds [tag, tag] with tag = 100l + 10h + e. */
function callEntries(callLength: number, offset = 0): Float32Array[] {
  return Array.from({ length: shape.layers }, (_, layer) => {
    const data = new Float32Array(shape.kvHeads * callLength * shape.headDim);
    for (let head = 0; head < shape.kvHeads; head++) {
      for (let e = 0; e < callLength; e++) {
        data.fill(
          100 * layer + 10 * head + e + offset,
          (head * callLength + e) * 2,
          (head * callLength + e) * 2 + 2,
        );
      }
    }
    return data;
  });
}

/** The tag stored in each slot of (layer, head), or NaN-free zeros for empty slots. */
function slots(cache: KvCache, layer: number, head: number): number[] {
  return Array.from(
    { length: shape.cacheLength },
    (_, slot) => cache.keys[layer]![(head * shape.cacheLength + slot) * 2]!,
  );
}

Deno.test("KvCache.commit() appends entries in order and advances the position", () => {
  const cache = new KvCache(shape);
  const keys = callEntries(3);
  cache.commit(keys, keys, 3, [0, 1]);
  assert.equal(cache.position, 2);
  assert.equal(cache.filledSlots, 2);
  assert.deepEqual(slots(cache, 1, 1), [110, 111, 0, 0]);
  assert.deepEqual(slots(cache, 0, 0), [0, 1, 0, 0]);
});

Deno.test("KvCache.commit() keeps the first token and overwrites the oldest after it", () => {
  const cache = new KvCache(shape);
  const keys = callEntries(3);
  cache.commit(keys, keys, 3, [0, 1, 2]);
  cache.commit(callEntries(3, 50), callEntries(3, 50), 3, [0, 1, 2]);
  assert.equal(cache.position, 6);
  assert.equal(cache.filledSlots, 4);
  // Position 0 keeps slot 0; positions 3, 4, 5 go to slots 3, 1, 2.
  assert.deepEqual(slots(cache, 0, 1), [10, 61, 62, 60]);
});

Deno.test("KvCache.commit() keeps the first and the newest C - 1 entries of a long call", () => {
  const cache = new KvCache(shape);
  const keys = callEntries(6);
  cache.commit(keys, keys, 6, [0, 1, 2, 3, 4, 5]);
  assert.equal(cache.position, 6);
  // Entry 0 keeps slot 0; entries 3, 4, 5 land in slots 3, 1, 2; entries 1 and 2 are gone.
  assert.deepEqual(slots(cache, 0, 0), [0, 4, 5, 3]);
});

Deno.test("KvCache.commit() keeps chosen entries only (lookahead's accepted branch)", () => {
  const cache = new KvCache(shape);
  const keys = callEntries(5);
  cache.commit(keys, keys, 5, [0, 3, 4]);
  assert.deepEqual(slots(cache, 1, 0), [100, 103, 104, 0]);
  assert.throws(() => cache.commit(keys, keys, 5, [5]), /entry 5 is outside the call \[0, 5\)/);
  assert.throws(() => cache.commit(keys.slice(1), keys, 5, [0]), /expected 2 layers, got 1/);
});
