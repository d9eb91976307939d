import assert from "node:assert/strict";
import { isSymmetricBlockDType, unpackBlocks } from "./blocks.ts";
import { openCheckpoint } from "./mod.ts";

const FIXTURES = new URL("../testdata/gguf/", import.meta.url);

/** Bit patterns, so that -0 and 0 differ and equality is exact. */
function bits(values: Float32Array): Uint32Array {
  return new Uint32Array(values.buffer, values.byteOffset, values.length);
}

Deno.test("unpackBlocks() gives integers and scales whose products are gguf.quants' values", async () => {
  using source = await openCheckpoint(new URL("types.gguf", FIXTURES).pathname);
  for (const dtype of ["Q8_0", "Q4_0"] as const) {
    const name = `matrix.${dtype}`;
    // What gguf.quants.dequantize gave (scripts/fixtures/gguf/make.py).
    const want = new Float32Array((await Deno.readFile(new URL(`${name}.f32`, FIXTURES))).buffer);
    const stored = await source.readStored(name);
    assert.equal(stored.dtype, dtype);
    const { bits: width, values, scales } = unpackBlocks(dtype, stored.bytes);
    assert.equal(width, dtype === "Q8_0" ? 8 : 4);
    const limit = 2 ** (width - 1);
    assert.ok(values.every((v) => v >= -limit && v < limit), name);
    const products = Float32Array.from(values, (v, i) => Math.fround(scales[i >> 5]! * v));
    assert.deepEqual(bits(products), bits(want), name);
  }
});

Deno.test("unpackBlocks() refuses a partial block, and only Q8_0 and Q4_0 are symmetric", () => {
  assert.throws(
    () => unpackBlocks("Q4_0", new Uint8Array(17)),
    /Cannot unpack Q4_0: 17 bytes are not whole blocks/,
  );
  assert.deepEqual(
    ["Q8_0", "Q4_0", "Q4_1", "Q4_K", "Q6_K", "F16"].filter(isSymmetricBlockDType),
    ["Q8_0", "Q4_0"],
  );
});
