/**
 * The shape rules themselves are checked against coremltools' type inference by
 * export/export_coremltools_test.ts (every declared output type must equal the inferred one);
 * these tests cover the call-length rewriting the CPU planner relies on and the errors.
 */

import assert from "node:assert/strict";
import { inferOutputTypes, type OpArgument, OpSignatureError } from "./ops.ts";

const f16 = (...shape: number[]): OpArgument => ({ type: { dtype: "fp16", shape } });
const ints = (...value: number[]): OpArgument => ({
  type: { dtype: "int32", shape: [value.length] },
  value,
});
const int = (value: number): OpArgument => ({
  type: { dtype: "int32", shape: [] },
  value: [value],
});
const args = (entries: Record<string, OpArgument | OpArgument[]>) =>
  new Map(Object.entries(entries).map(([k, v]) => [k, Array.isArray(v) ? v : [v]]));

Deno.test("inferOutputTypes() resolves -1 in reshape for any call length", () => {
  for (const length of [1, 7, 32]) {
    const [out] = inferOutputTypes(
      "reshape",
      args({ x: f16(1, length, 64), shape: ints(1, -1, 4, 16) }),
    );
    assert.deepEqual(out!.shape, [1, length, 4, 16]);
  }
  assert.throws(
    () => inferOutputTypes("reshape", args({ x: f16(1, 3, 64), shape: ints(-1, -1) })),
    /more than one -1/,
  );
  assert.throws(
    () => inferOutputTypes("reshape", args({ x: f16(1, 3, 64), shape: ints(5, -1) })),
    /cannot reshape/,
  );
});

Deno.test("inferOutputTypes() broadcasts matmul batches and the mask add", () => {
  const scores = inferOutputTypes(
    "matmul",
    args({
      x: f16(2, 3, 8, 16),
      y: f16(2, 1, 40, 16),
      transpose_x: { type: { dtype: "bool", shape: [] }, value: [0] },
      transpose_y: { type: { dtype: "bool", shape: [] }, value: [1] },
    }),
  )[0]!;
  assert.deepEqual(scores.shape, [2, 3, 8, 40]);
  assert.deepEqual(
    inferOutputTypes("add", args({ x: f16(2, 3, 8, 40), y: f16(1, 8, 40) }))[0]!.shape,
    [2, 3, 8, 40],
  );
  assert.throws(
    () => inferOutputTypes("add", args({ x: f16(2, 8), y: f16(3, 8) })),
    /do not broadcast/,
  );
});

Deno.test("inferOutputTypes() splits, concatenates and gathers", () => {
  const halves = inferOutputTypes(
    "split",
    args({ x: f16(1, 5, 4, 16), axis: int(-1), num_splits: int(2) }),
  );
  assert.deepEqual(halves.map((t) => t.shape), [[1, 5, 4, 8], [1, 5, 4, 8]]);
  const joined = inferOutputTypes(
    "concat",
    args({ values: [f16(1, 2, 32, 16), f16(1, 2, 5, 16)], axis: int(2) }),
  );
  assert.deepEqual(joined[0]!.shape, [1, 2, 37, 16]);
  const gathered = inferOutputTypes(
    "gather",
    args({ x: f16(100, 64), indices: { type: { dtype: "int32", shape: [1, 5] } }, axis: int(0) }),
  );
  assert.deepEqual(gathered[0]!.shape, [1, 5, 64]);
});

Deno.test("inferOutputTypes() rejects unknown ops and mismatched operands", () => {
  assert.throws(() => inferOutputTypes("conv", args({ x: f16(1) })), OpSignatureError);
  assert.throws(
    () => inferOutputTypes("linear", args({ x: f16(1, 3, 8), weight: f16(4, 9) })),
    /does not match weight/,
  );
  assert.throws(
    () => inferOutputTypes("add", args({ x: f16(2), y: { type: { dtype: "fp32", shape: [2] } } })),
    /must share a dtype/,
  );
  assert.throws(
    () => inferOutputTypes("softmax", args({ x: f16(2, 3), axis: int(2) })),
    /out of range for rank 2/,
  );
});

Deno.test("inferOutputTypes() checks constexpr_lut_to_dense's palettes against its indices", () => {
  const indices = (dtype: "uint4" | "uint6", ...shape: number[]): OpArgument => ({
    type: { dtype, shape },
  });
  const [dense] = inferOutputTypes(
    "constexpr_lut_to_dense",
    args({ indices: indices("uint4", 64, 32), lut: f16(16, 1, 16, 1) }),
  );
  assert.deepEqual(dense, { dtype: "fp16", shape: [64, 32] });
  const lut = (palettes: OpArgument, ix = indices("uint6", 64, 32)) => () =>
    inferOutputTypes("constexpr_lut_to_dense", args({ indices: ix, lut: palettes }));
  assert.deepEqual(lut(f16(8, 1, 64, 1))()[0]!.shape, [64, 32]);
  assert.throws(lut(f16(8, 1, 16, 1)), /needs 64 entries for uint6/);
  assert.throws(lut(f16(6, 1, 64, 1)), /does not divide/);
  assert.throws(lut(f16(8, 64, 1)), /two more axes/);
  assert.throws(lut(f16(8, 1, 64, 1), f16(64, 32)), /indices must be/);
});
