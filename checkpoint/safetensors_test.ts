import assert from "node:assert/strict";
import fc from "fast-check";
import { CheckpointFormatError } from "./errors.ts";
import { openCheckpoint } from "./mod.ts";
import { RandomAccessFile } from "./random_access_file.ts";
import { openSafetensors } from "./safetensors.ts";
import {
  assertMatchesPyTorch,
  assertSameFloats,
  fixture,
  isCheckpointError,
  readExpected,
  withTempFile,
} from "./_testing.ts";

Deno.test("readSafetensors() reads every dtype as PyTorch does, listing tensors in data order", async () => {
  using source = await openCheckpoint(fixture("dtypes.safetensors"));
  await assertMatchesPyTorch(source, "dtypes_safetensors");
});

Deno.test("readFloat32() reads row ranges of a safetensors tensor", async () => {
  using source = await openCheckpoint(fixture("dtypes.safetensors"));
  const tensor = (await readExpected("dtypes_safetensors")).find((t) => t.name === "f16");
  assert.ok(tensor !== undefined);
  const columns = tensor.shape[1]!;
  for (const [start, end] of [[0, 1], [1, 3], [2, 2]] as const) {
    assertSameFloats(
      await source.readFloat32("f16", { start, end }),
      tensor.values.subarray(start * columns, end * columns),
      `f16[${start}:${end}]`,
    );
  }
});

const malformed: [string, RegExp][] = [
  [
    "bad_past_end.safetensors",
    /tensor "b": data_offsets \[24, 40\] run past the end of the data \(32 bytes\)/,
  ],
  ["bad_overlap.safetensors", /tensor "b" at data offset 16 overlaps the tensor before it/],
  ["bad_hole.safetensors", /4 bytes belong to no tensor/],
  ["bad_reversed_offsets.safetensors", /data_offsets \[32, 24\] end before they begin/],
  [
    "bad_size_mismatch.safetensors",
    /shape \[2, 4\] of F32 needs 32 bytes but data_offsets \[0, 24\] span 24/,
  ],
  [
    "bad_huge_header.safetensors",
    /header length 4611686018427387904 exceeds the 100000000-byte limit/,
  ],
  ["bad_json.safetensors", /header is not valid UTF-8 JSON/],
];

for (const [name, pattern] of malformed) {
  Deno.test(`readSafetensors() rejects ${name}`, async () => {
    await assert.rejects(openCheckpoint(fixture(name)), (error: Error) => {
      assert.ok(error instanceof CheckpointFormatError, `${error.name}: ${error.message}`);
      assert.match(error.message, pattern);
      return true;
    });
  });
}

const valid = await Deno.readFile(fixture("dtypes.safetensors"));
const headerEnd = 8 + Number(new DataView(valid.buffer).getBigUint64(0, true));

/** A copy of the valid file with its JSON header replaced by `header` (padded to the same length). */
function withHeader(header: string): Uint8Array {
  const text = new TextEncoder().encode(header.padEnd(headerEnd - 8));
  assert.equal(text.length, headerEnd - 8, "test header must fit the original's length");
  const bytes = valid.slice();
  bytes.set(text, 8);
  return bytes;
}

Deno.test("readSafetensors() rejects malformed header entries", async () => {
  const cases: [string, RegExp][] = [
    ["[1, 2]", /not a JSON object/],
    ['{"__metadata__": {"a": 1}}', /"__metadata__" must map strings to strings/],
    ['{"x": 1}', /tensor "x": its entry is not an object/],
    [
      '{"x": {"dtype": "F8_E4M3", "shape": [1], "data_offsets": [0, 1]}}',
      /unsupported dtype "F8_E4M3"/,
    ],
    [
      '{"x": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}',
      /shape must be a list of non-negative integers/,
    ],
    ['{"x": {"dtype": "F32", "shape": [1], "data_offsets": [0]}}', /data_offsets must be two/],
  ];
  for (const [header, pattern] of cases) {
    // openSafetensors() directly: openCheckpoint() only hands it files whose header starts with "{".
    await withTempFile(withHeader(header), async (path) => {
      await assert.rejects(
        openSafetensors(await RandomAccessFile.open(path)),
        (error: Error) => error instanceof CheckpointFormatError && pattern.test(error.message),
      );
    });
  }
});

Deno.test("readSafetensors() throws only checkpoint errors for random truncations and byte changes", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 0, max: valid.length }),
      fc.array(fc.tuple(fc.nat({ max: valid.length - 1 }), fc.integer({ min: 0, max: 255 })), {
        maxLength: 8,
      }),
      async (length, changes) => {
        const bytes = valid.slice();
        for (const [at, value] of changes) bytes[at] = value;
        await withTempFile(bytes.slice(0, length), async (path) => {
          try {
            using source = await openCheckpoint(path);
            for (const { name } of source.list()) await source.readFloat32(name);
          } catch (error) {
            if (!isCheckpointError(error)) throw error;
          }
        });
      },
    ),
    { numRuns: 300 },
  );
});
