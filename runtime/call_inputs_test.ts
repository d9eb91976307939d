import assert from "node:assert/strict";
import { KvCache } from "./kv_cache.ts";
import { buildCallInputs, causalVisibility } from "./call_inputs.ts";
import { MASK_HIDDEN } from "../bundle/io_names.ts";

const shape = { layers: 1, kvHeads: 1, cacheLength: 4, headDim: 2, dtype: "fp32" } as const;

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

Deno.test("buildCallInputs() keeps every row inside its C-token sliding window", () => {
  const cache = new KvCache(shape);
  const entry = [new Float32Array(2 * 6)];
  cache.commit(entry, entry, 6, [0, 1, 2, 3, 4, 5]);
  // Positions 2..5 sit in slots 2, 3, 0, 1; the call covers positions 6, 7, 8.
  const mask = maskPattern(
    buildCallInputs(cache, new Float64Array([1]), { tokens: [1, 2, 3], callLength: 3 }).get(
      "mask",
    )!,
  );
  assert.equal(
    mask,
    [
      "...." + ".xx", // position 6 sees 2..5
      "..x." + "..x", // position 7 no longer sees 2 (slot 2)
      "..xx" + "...", // position 8 no longer sees 2 and 3
    ].join(""),
  );
});
