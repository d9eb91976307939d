import assert from "node:assert/strict";
import { openCheckpoint, openGguf } from "./mod.ts";
import { CheckpointFormatError } from "./errors.ts";
import { withTempFile } from "./_testing.ts";
import { elementCount } from "../shape.ts";

const FIXTURES = new URL("../testdata/gguf/", import.meta.url);
const TYPES = new URL("types.gguf", FIXTURES).pathname;

/** What gguf.quants.dequantize gave for a tensor (scripts/fixtures/gguf/make.py). */
async function expected(name: string): Promise<Float32Array> {
  return new Float32Array((await Deno.readFile(new URL(`${name}.f32`, FIXTURES))).buffer);
}

/** Bit patterns, so that -0 and 0 differ and equality is exact. */
function bits(values: Float32Array): Uint32Array {
  return new Uint32Array(values.buffer, values.byteOffset, values.length);
}

Deno.test("GGUF tensors of every type dequantize bit for bit as gguf.quants does", async () => {
  using source = await openCheckpoint(TYPES);
  assert.equal(source.format, "gguf");
  const dtypes = source.list().map((t) => t.dtype);
  assert.deepEqual(dtypes, ["F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q4_K", "Q5_K", "Q6_K"]);
  for (const { name, shape } of source.list()) {
    const want = await expected(name);
    const got = await source.readFloat32(name);
    assert.equal(got.length, elementCount(shape), name);
    assert.deepEqual(bits(got), bits(want), name);
  }
});

Deno.test("GGUF rows read alone equal the same rows of the whole tensor", async () => {
  using source = await openCheckpoint(TYPES);
  for (const name of ["matrix.Q6_K", "matrix.Q4_1", "matrix.BF16"]) {
    const want = await expected(name);
    const got = await source.readFloat32(name, { start: 1, end: 3 });
    assert.deepEqual(bits(got), bits(want.subarray(512, 1536)), name);
  }
});

Deno.test("readStored() hands over a GGUF tensor's blocks as stored", async () => {
  using source = await openCheckpoint(TYPES);
  const stored = await source.readStored("matrix.Q4_K", { start: 2, end: 3 });
  assert.equal(stored.dtype, "Q4_K");
  assert.deepEqual(stored.shape, [1, 512]);
  assert.equal(stored.bytes.length, 2 * 144);
  const file = await Deno.readFile(TYPES);
  const whole = await source.readStored("matrix.Q4_K");
  const at = findBytes(file, whole.bytes);
  assert.deepEqual(stored.bytes, file.subarray(at + 4 * 144, at + 6 * 144));
});

Deno.test("openGguf() gives the metadata the gguf package wrote", async () => {
  using source = await openGguf(TYPES);
  const value = (key: string) => source.header.metadata.get(key);
  assert.deepEqual(value("general.architecture"), { type: "string", value: "llama" });
  assert.deepEqual(value("llamane.test.u64"), { type: "u64", value: 2n ** 60n });
  assert.deepEqual(value("llamane.test.i8"), { type: "i8", value: -5 });
  assert.deepEqual(value("llamane.test.f64"), { type: "f64", value: 0.1 });
  assert.deepEqual(value("llamane.test.bool"), { type: "bool", value: true });
  assert.deepEqual(value("llamane.test.strings"), {
    type: "array<string>",
    value: ["a", "bc", "", "é"],
  });
});

Deno.test("a truncated GGUF is a CheckpointFormatError naming the tensor cut off", async () => {
  const bytes = await Deno.readFile(TYPES);
  await withTempFile(bytes.subarray(0, bytes.length - 100), async (path) => {
    await assert.rejects(
      openCheckpoint(path),
      (error: unknown) =>
        error instanceof CheckpointFormatError &&
        /Cannot read checkpoint ".*": tensor "matrix.Q6_K" .* runs past the end/.test(
          error.message,
        ),
    );
  });
});

function findBytes(haystack: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  throw new Error("not found");
}
