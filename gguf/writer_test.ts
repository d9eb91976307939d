import assert from "node:assert/strict";
import { oracleGgufMetadata } from "../testing/hf_oracle.ts";
import { memorySource } from "./_testing.ts";
import { type GgufMetadataEntry, parseGgufHeader, readGgufHeader } from "./header.ts";
import { writeGgufMetadata } from "./writer.ts";

/** One entry of every type the reader gives, with values at the edges of each. */
const ENTRIES: readonly (readonly [string, GgufMetadataEntry])[] = [
  ["general.alignment", { type: "u32", value: 64 }],
  ["t.u8", { type: "u8", value: 255 }],
  ["t.i8", { type: "i8", value: -128 }],
  ["t.u16", { type: "u16", value: 65535 }],
  ["t.i16", { type: "i16", value: -32768 }],
  ["t.u32", { type: "u32", value: 0xffffffff }],
  ["t.i32", { type: "i32", value: -(2 ** 31) }],
  ["t.f32", { type: "f32", value: Math.fround(-1.0e-7) }],
  ["t.bool", { type: "bool", value: true }],
  ["t.string", { type: "string", value: "\ufeffÄ 日本 🙂 <|im_end|>" }],
  ["t.u64", { type: "u64", value: 2n ** 64n - 1n }],
  ["t.u64.small", { type: "u64", value: 2 ** 53 - 1 }],
  ["t.i64", { type: "i64", value: -(2n ** 63n) }],
  ["t.f64", { type: "f64", value: Math.PI }],
  ["t.strings", { type: "array<string>", value: ["", "a b", "\u2581x", "\n"] }],
  ["t.i32s", { type: "array<i32>", value: [1, -1, 6, 2 ** 31 - 1] }],
  ["t.f32s", { type: "array<f32>", value: [0, -1.5, Math.fround(0.1)] }],
  ["t.bools", { type: "array<bool>", value: [false, true] }],
  ["t.empty", { type: "array<u8>", value: [] }],
];

/** What Python's JSON gives for a value: integers beyond 2^53 as decimal strings. */
function asOracleJson(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(asOracleJson);
  return typeof value === "bigint" ? value.toString() : value;
}

Deno.test("writeGgufMetadata() writes every value type as the gguf package reads it", async () => {
  const bytes = writeGgufMetadata(ENTRIES);
  const path = await Deno.makeTempFile({ suffix: ".gguf" });
  try {
    await Deno.writeFile(path, bytes);
    const oracle = await oracleGgufMetadata(path);
    assert.equal(oracle.version, 3);
    assert.equal(oracle.tensor_count, 0);
    assert.deepEqual(
      oracle.metadata,
      Object.fromEntries(
        ENTRIES.map(([key, { type, value }]) => [key, { type, value: asOracleJson(value) }]),
      ),
    );
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("writeGgufMetadata() round-trips through the reader, byte for byte", async () => {
  const bytes = writeGgufMetadata(ENTRIES);
  const header = await readGgufHeader(memorySource(bytes));
  assert.deepEqual([...header.metadata], ENTRIES);
  assert.deepEqual(header.tensors, []);
  assert.equal(bytes.length % 32, 0);
  assert.deepEqual(parseGgufHeader(bytes, "m.gguf"), header);
  assert.deepEqual(writeGgufMetadata(header.metadata), bytes);
  // Large enough to grow the writer's buffer many times over.
  const tokens = Array.from({ length: 5000 }, (_, i) => `token ${i} ${"x".repeat(i % 97)}`);
  const large = writeGgufMetadata([["tokenizer.ggml.tokens", {
    type: "array<string>",
    value: tokens,
  }]]);
  const read = parseGgufHeader(large, "large.gguf");
  assert.deepEqual(read.metadata.get("tokenizer.ggml.tokens")?.value, tokens);
});

Deno.test("writeGgufMetadata() refuses a type the reader never gives", () => {
  for (const type of ["u128", "array", "array<array<u8>>"]) {
    assert.throws(
      () => writeGgufMetadata([["k", { type, value: [] }]]),
      (error: unknown) =>
        error instanceof TypeError &&
        /^unknown GGUF value type "(u128|array|array<u8>)"$/.test(error.message),
      type,
    );
  }
});
