/**
 * Test support: a model that uses every value kind the IR supports (immediates of every dtype,
 * an empty tensor, non-finite floats, blob values, inline constexpr inputs, variadic and
 * multi-output ops, metadata), built against an in-memory blob sink.
 *
 * @module
 */

import { type BlobSink, ProgramBuilder } from "./builder.ts";
import type { Model } from "./model.ts";
import { scalar, storedByteLength, tensor } from "./tensor.ts";

/** A blob sink that stores nothing and hands out the offsets a real weight.bin would. */
function offsetsOnly(): BlobSink {
  let next = 64;
  return {
    append(t) {
      const offset = next;
      next = Math.ceil((offset + 64 + storedByteLength(t.dtype, t.values.length)) / 64) * 64;
      return offset;
    },
  };
}

function addFunction(program: ProgramBuilder, name: string, rows: number): void {
  const f = program.function(name);
  const tokens = f.input("tokens", { dtype: "int32", shape: [1, rows] });
  const x = f.input("x", { dtype: "fp16", shape: [1, rows, 32] });
  const table = f.const(
    "table",
    tensor("fp16", [16, 32], Array.from({ length: 512 }, (_, i) => i / 64)),
  );
  const embedded = f.op("gather", { x: table, indices: tokens, axis: scalar("int32", 0) }, {
    dtype: "fp16",
    shape: [1, rows, 32],
  }, { name: "embedded" });
  const weight = f.op(
    "constexpr_blockwise_shift_scale",
    {
      data: tensor("int4", [8, 32], Array.from({ length: 256 }, (_, i) => (i % 16) - 8)),
      scale: tensor("fp16", [8, 1], [1, 0.5, 0.25, 2, 1, 1, 1, 1]),
    },
    { dtype: "fp16", shape: [8, 32] },
    { name: "weight" },
  );
  const both = f.op("concat", { values: [x, embedded], axis: scalar("int32", -1) }, {
    dtype: "fp16",
    shape: [1, rows, 64],
  });
  const [left, right] = f.multiOp("split", {
    x: both,
    num_splits: scalar("int32", 2),
    axis: scalar("int32", -1),
  }, [
    { dtype: "fp16", shape: [1, rows, 32] },
    { dtype: "fp16", shape: [1, rows, 32] },
  ], { name: "halves" });
  const summed = f.op("add", { x: left!, y: right! }, left!.type);
  const projected = f.op("linear", { x: summed, weight }, { dtype: "fp16", shape: [1, rows, 8] }, {
    name: "logits",
  });
  const asFloat = f.op("cast", { x: tokens, dtype: scalar("string", "fp32") }, {
    dtype: "fp32",
    shape: [1, rows],
  }, { name: "positions" });
  f.const("every_fp16", tensor("fp16", [3], [1, -0.5, Infinity]));
  f.const("every_fp32", tensor("fp32", [3], [-Infinity, 1e-40, 3.5]));
  f.const("every_int32", tensor("int32", [2, 2], [-1, 0, 2147483647, -2147483648]));
  f.const("every_int8", tensor("int8", [3], [-128, 0, 127]));
  f.const("every_uint8", tensor("uint8", [3], [0, 1, 255]));
  f.const("every_int4", tensor("int4", [5], [1, -1, 7, -8, 3]));
  f.const("every_uint4", tensor("uint4", [3], [0, 15, 9]));
  f.const("every_bool", tensor("bool", [2], [true, false]));
  f.const("every_string", tensor("string", [2], ["fp16", "\u00e9t\u00e9"]));
  f.const("empty", tensor("fp32", [2, 0], []));
  f.const("big_int8", tensor("int8", [10], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]));
  f.output(projected, asFloat);
}

/**
 * The sample model.
 *
 * @param multifunction two functions (`prefill` with 4 rows, default `decode` with 1) instead
 * of one `main`
 */
export function sampleModel(multifunction = false): Model {
  const program = new ProgramBuilder({ weights: offsetsOnly() });
  if (!multifunction) {
    addFunction(program, "main", 3);
    return program.build({
      metadata: {
        author: "llamane tests",
        license: "CC0-1.0",
        shortDescription: "every value kind",
        versionString: "1.0",
        userDefined: new Map([["llamane.kind", "sample"], ["empty", ""]]),
      },
    });
  }
  addFunction(program, "prefill", 4);
  addFunction(program, "decode", 1);
  return program.build({ defaultFunctionName: "decode" });
}
