import assert from "node:assert/strict";
import fc from "fast-check";
import { buildGguf, memorySource, type TestGguf, type TestTensor } from "./_testing.ts";
import { GgufFormatError, readGgufHeader } from "./header.ts";

const F32 = 0;
const Q4_K = 12;
const A: TestTensor = { name: "a", dims: [256, 2], typeId: Q4_K, offset: 0 };
const B: TestTensor = { name: "b", dims: [8], typeId: F32, offset: 288 };
const valid: TestGguf = {
  metadata: [
    ["general.architecture", { string: "llama" }],
    ["tokenizer.ggml.tokens", { strings: ["<s>", "a", "é", "\ufeff"] }],
    ["llama.block_count", { u32: 2 }],
  ],
  tensors: [A, B],
  dataBytes: 320,
};

async function rejects(bytes: Uint8Array, pattern: RegExp): Promise<void> {
  await assert.rejects(readGgufHeader(memorySource(bytes)), (error: unknown) => {
    assert.ok(error instanceof GgufFormatError, String(error));
    assert.match(error.message, pattern);
    return true;
  });
}

Deno.test("readGgufHeader() reads metadata and the tensor table, shapes outermost first", async () => {
  const header = await readGgufHeader(memorySource(buildGguf(valid)));
  assert.equal(header.version, 3);
  assert.deepEqual(header.metadata.get("tokenizer.ggml.tokens"), {
    type: "array<string>",
    value: ["<s>", "a", "é", "\ufeff"],
  });
  assert.deepEqual(header.metadata.get("llama.block_count"), { type: "u32", value: 2 });
  const dataOffset = header.dataOffset;
  assert.equal(dataOffset % 32, 0);
  assert.deepEqual(header.tensors, [
    { name: "a", shape: [2, 256], type: "Q4_K", offset: dataOffset, byteLength: 288 },
    { name: "b", shape: [8], type: "F32", offset: dataOffset + 288, byteLength: 32 },
  ]);
});

Deno.test("readGgufHeader() accepts version 2 and refuses 1 and big-endian files", async () => {
  assert.equal(
    (await readGgufHeader(memorySource(buildGguf({ ...valid, version: 2 })))).version,
    2,
  );
  await rejects(buildGguf({ ...valid, version: 1 }), /version 1 .*64-bit counts/);
  await rejects(buildGguf({ ...valid, version: 3 << 24 }), /big-endian/);
});

Deno.test("readGgufHeader() refuses a truncated file, naming where it ends", async () => {
  const bytes = buildGguf(valid);
  await rejects(
    bytes.slice(0, 150),
    /truncated file: .* runs past the end of the file \(size 150\)/,
  );
  await rejects(
    bytes.slice(0, 30),
    /claims 2 tensors and 3 metadata entries, more than the 6 bytes/,
  );
  await rejects(bytes.slice(0, bytes.length - 1), /tensor "b" .* runs past the end of the file/);
});

Deno.test("readGgufHeader() refuses lying counts before allocating for them", async () => {
  await rejects(
    buildGguf({ ...valid, tensorCount: 2 ** 40 }),
    /claims 1099511627776 tensors .* more than the \d+ bytes left/,
  );
  const lyingArray = buildGguf({ ...valid });
  // The array's item count follows its key, its type (9) and its item type (8).
  const at = findBytes(lyingArray, new TextEncoder().encode("tokenizer.ggml.tokens")) + 21 + 8;
  new DataView(lyingArray.buffer).setBigUint64(at, 2n ** 50n, true);
  await rejects(lyingArray, /"tokenizer.ggml.tokens" claims 1125899906842624 items/);
});

Deno.test("readGgufHeader() refuses lying or overlapping tensor offsets", async () => {
  const tensors = (b: Partial<TestTensor>) => [A, { ...B, ...b }];
  await rejects(buildGguf({ ...valid, tensors: tensors({ offset: 4096 }) }), /runs past the end/);
  await rejects(
    buildGguf({ ...valid, tensors: tensors({ offset: 33 }) }),
    /not a multiple of the alignment 32/,
  );
  await rejects(buildGguf({ ...valid, tensors: tensors({ offset: 256 }) }), /overlaps tensor "a"/);
  await rejects(
    buildGguf({ ...valid, tensors: tensors({ name: "a" }) }),
    /tensor "a" appears twice/,
  );
});

Deno.test("readGgufHeader() names an unsupported or unknown tensor type", async () => {
  const withType = (typeId: number) => buildGguf({ ...valid, tensors: [{ ...A, typeId }] });
  await rejects(
    withType(16),
    /ggml type IQ2_XXS \(id 16\), which is not supported; supported: F32/,
  );
  await rejects(withType(200), /ggml type type 200 \(id 200\)/);
  await rejects(
    buildGguf({ ...valid, tensors: [{ ...A, dims: [100, 2] }] }),
    /rows of 100 values, not a whole number of Q4_K blocks of 256/,
  );
});

Deno.test("readGgufHeader() gives only GgufFormatError or a consistent header, whatever the bytes", async () => {
  const bytes = buildGguf(valid);
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.tuple(fc.nat(bytes.length - 1), fc.integer({ min: 0, max: 255 })), {
        maxLength: 8,
      }),
      fc.nat(bytes.length),
      async (edits, cut) => {
        const mutated = bytes.slice(0, Math.max(cut, 4));
        for (const [at, value] of edits) if (at < mutated.length) mutated[at] = value;
        try {
          const header = await readGgufHeader(memorySource(mutated));
          for (const tensor of header.tensors) {
            assert.ok(tensor.offset >= header.dataOffset);
            assert.ok(tensor.offset + tensor.byteLength <= mutated.length);
          }
        } catch (error) {
          if (!(error instanceof GgufFormatError)) throw error;
        }
      },
    ),
    { numRuns: 2000 },
  );
});

function findBytes(haystack: Uint8Array, needle: Uint8Array): number {
  for (let i = 0; i + needle.length <= haystack.length; i++) {
    if (needle.every((b, j) => haystack[i + j] === b)) return i;
  }
  throw new Error("not found");
}
