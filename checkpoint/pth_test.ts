import assert from "node:assert/strict";
import fc from "fast-check";
import { CheckpointFormatError, ForbiddenPickleError, TensorReadError } from "./errors.ts";
import { openCheckpoint } from "./mod.ts";
import {
  assertMatchesPyTorch,
  assertSameFloats,
  fixture,
  isCheckpointError,
  readExpected,
  withTempFile,
} from "./_testing.ts";

Deno.test("readPth() reads fp32, fp16, bf16, fp64 and integer tensors as PyTorch does", async () => {
  using source = await openCheckpoint(fixture("dtypes.pth"));
  await assertMatchesPyTorch(source, "dtypes");
});

Deno.test("readPth() resolves views: storage offsets, transposed and zero strides, shared storages", async () => {
  using source = await openCheckpoint(fixture("views.pth"));
  await assertMatchesPyTorch(source, "views");
});

Deno.test('readPth() takes the tensors of a training checkpoint\'s top-level "model" dict', async () => {
  using source = await openCheckpoint(fixture("nested_model.pth"));
  await assertMatchesPyTorch(source, "nested_model");
});

Deno.test("readPth() reads an nn.Module state dict saved with pickle protocols 2 and 4", async () => {
  for (const file of ["module.pth", "module_p4.pth"]) {
    using source = await openCheckpoint(fixture(file));
    await assertMatchesPyTorch(source, "module");
  }
});

Deno.test("readPth() reads a dict of nn.Parameter objects", async () => {
  using source = await openCheckpoint(fixture("parameters.pth"));
  await assertMatchesPyTorch(source, "module");
});

Deno.test("readPth() reads an archive whose members are deflated", async () => {
  using source = await openCheckpoint(fixture("deflate.pth"));
  await assertMatchesPyTorch(source, "views");
});

Deno.test("readPth() reads an archive that uses every zip64 record", async () => {
  using source = await openCheckpoint(fixture("zip64.pth"));
  await assertMatchesPyTorch(source, "dtypes");
});

Deno.test("readPth() accepts a little-endian byteorder record and rejects a big-endian one", async () => {
  using source = await openCheckpoint(fixture("byteorder_little.pth"));
  await assertMatchesPyTorch(source, "dtypes");
  await assert.rejects(
    openCheckpoint(fixture("byteorder_big.pth")),
    (error: Error) => error instanceof CheckpointFormatError && /"big"-endian/.test(error.message),
  );
});

Deno.test("readFloat32() reads row ranges of contiguous and transposed tensors", async () => {
  using source = await openCheckpoint(fixture("rows.pth"));
  for (const tensor of await readExpected("rows")) {
    const [rows, columns] = tensor.shape as [number, number];
    for (const [start, end] of [[0, rows], [0, 1], [rows - 1, rows], [5, 17], [9, 9]] as const) {
      const actual = await source.readFloat32(tensor.name, { start, end });
      assertSameFloats(
        actual,
        tensor.values.subarray(start * columns, end * columns),
        `${tensor.name}[${start}:${end}]`,
      );
    }
  }
});

Deno.test("readFloat32() rejects unknown tensors and rows outside the tensor", async () => {
  using source = await openCheckpoint(fixture("views.pth"));
  const rejects = (promise: Promise<unknown>, pattern: RegExp) =>
    assert.rejects(
      promise,
      (error: Error) => error instanceof TensorReadError && pattern.test(error.message),
    );
  await rejects(source.readFloat32("missing"), /no such tensor .*"base"/);
  await rejects(source.readFloat32("base", { start: 2, end: 7 }), /rows \[2, 7\)/);
  await rejects(source.readFloat32("base", { start: 3, end: 2 }), /rows \[3, 2\)/);
  await rejects(source.readFloat32("base", { start: 0.5, end: 2 }), /rows/);
  await rejects(source.readFloat32("element", { start: 0, end: 1 }), /scalar has no rows/);
});

Deno.test("readFloat32() gives the right values when many reads of one file run at once", async () => {
  using source = await openCheckpoint(fixture("views.pth"));
  const expected = await readExpected("views");
  const reads = expected.flatMap((tensor) => [tensor, tensor, tensor]);
  const results = await Promise.all(reads.map((tensor) => source.readFloat32(tensor.name)));
  results.forEach((values, i) => assertSameFloats(values, reads[i]!.values, reads[i]!.name));
});

Deno.test("readPth() rejects a pickle that calls os.system, naming the global and its offset", async () => {
  await assert.rejects(openCheckpoint(fixture("malicious_os_system.pth")), (error: Error) => {
    assert.ok(error instanceof ForbiddenPickleError);
    assert.equal(error.forbidden, "posix.system");
    assert.match(
      error.message,
      /forbidden global "posix\.system" at pickle offset \d+ .*file offset \d+/,
    );
    return true;
  });
});

Deno.test("readPth() rejects a pickle that calls eval", async () => {
  await assert.rejects(
    openCheckpoint(fixture("malicious_eval.pth")),
    (error: Error) => error instanceof ForbiddenPickleError && /eval/.test(error.forbidden),
  );
});

Deno.test("readPth() rejects a pickle with an unknown opcode, naming it and its offset", async () => {
  await assert.rejects(
    openCheckpoint(fixture("unknown_opcode.pth")),
    (error: Error) =>
      error instanceof CheckpointFormatError &&
      /unknown opcode 0xff at pickle offset 2 /.test(error.message),
  );
});

Deno.test("readPth() rejects a tensor whose view reaches past the end of its storage", async () => {
  await assert.rejects(
    openCheckpoint(fixture("storage_too_short.pth")),
    (error: Error) =>
      error instanceof CheckpointFormatError && /"view" .*storage is too short/.test(error.message),
  );
});

Deno.test("readPth() rejects stride-0 views that declare more elements than the archive stores", async () => {
  // 2^31 elements over a storage of 8: `info` would report them, `export` would try to read them.
  await assert.rejects(
    openCheckpoint(fixture("repeated_views.pth")),
    (error: Error) =>
      error instanceof CheckpointFormatError &&
      /"tok_embeddings.weight" .*repeats storage elements.* 2147483648 elements, more than the 8/
        .test(error.message),
  );
});

const valid = await Deno.readFile(fixture("views.pth"));

/** Offset of the last occurrence of a 4-byte little-endian zip signature. */
function lastSignature(bytes: Uint8Array, signature: number): number {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = bytes.length - 4; i >= 0; i--) if (view.getUint32(i, true) === signature) return i;
  throw new Error(`no signature ${signature.toString(16)}`);
}

function firstSignature(bytes: Uint8Array, signature: number): number {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i + 4 <= bytes.length; i++) if (view.getUint32(i, true) === signature) return i;
  throw new Error(`no signature ${signature.toString(16)}`);
}

/** Opens `bytes` as a checkpoint and reads every tensor. */
async function openAndReadAll(bytes: Uint8Array): Promise<void> {
  await withTempFile(bytes, async (path) => {
    using source = await openCheckpoint(path);
    for (const { name } of source.list()) await source.readFloat32(name);
  });
}

function expectFormatError(bytes: Uint8Array, pattern: RegExp): Promise<void> {
  return assert.rejects(openAndReadAll(bytes), (error: Error) => {
    assert.ok(error instanceof CheckpointFormatError, `${error.name}: ${error.message}`);
    assert.match(error.message, pattern);
    return true;
  });
}

Deno.test("readPth() rejects a zip truncated anywhere", async () => {
  const centralDirectory = firstSignature(valid, 0x02014b50);
  const end = lastSignature(valid, 0x06054b50);
  const cuts = [
    0,
    3,
    4,
    21,
    100,
    centralDirectory - 1,
    centralDirectory + 10,
    end,
    end + 10,
    valid.length - 1,
  ];
  for (const cut of cuts) {
    await expectFormatError(
      valid.slice(0, cut),
      /Cannot read checkpoint "[^"]+": (truncated|unrecognised|corrupt)/,
    );
  }
});

Deno.test("readPth() rejects a corrupt central directory", async () => {
  const central = firstSignature(valid, 0x02014b50);
  const end = lastSignature(valid, 0x06054b50);
  const corrupt = (edit: (view: DataView) => void) => {
    const bytes = valid.slice();
    edit(new DataView(bytes.buffer));
    return bytes;
  };
  await expectFormatError(
    corrupt((v) => v.setUint32(central, 0x12345678, true)),
    /no central header signature/,
  );
  await expectFormatError(
    corrupt((v) => v.setUint16(central + 28, 0xffff, true)),
    /runs past the end of the directory/,
  );
  await expectFormatError(
    corrupt((v) => v.setUint32(central + 42, central + 1, true)),
    /past the central directory/,
  );
  await expectFormatError(
    corrupt((v) => v.setUint32(central + 42, 7, true)),
    /no local header signature/,
  );
  // torch writes zip64 end records, so the central directory is found through them.
  const zip64End = lastSignature(valid, 0x06064b50);
  await expectFormatError(
    corrupt((v) => v.setBigUint64(zip64End + 48, 1n << 40n, true)),
    /runs past the end of central directory/,
  );
  await expectFormatError(
    corrupt((v) => v.setBigUint64(zip64End + 32, 1n << 40n, true)),
    /cannot fit/,
  );
  await expectFormatError(
    corrupt((v) => v.setUint32(zip64End, 0, true)),
    /no zip64 end of central directory record/,
  );
  assert.ok(end > zip64End);
});

Deno.test("readPth() rejects a pickle whose bytes do not match their CRC-32", async () => {
  const bytes = valid.slice();
  const pickleStart = bytes.indexOf(0x80, firstSignature(bytes, 0x04034b50) + 30);
  bytes[pickleStart + 1] = 3;
  await expectFormatError(bytes, /CRC-32/);
});

Deno.test("readFloat32() rejects a storage whose recorded size runs into the central directory", async () => {
  const bytes = valid.slice();
  const view = new DataView(bytes.buffer);
  const central = firstSignature(bytes, 0x02014b50);
  // The second entry is the first storage: make its recorded size larger than the space it has.
  const second = central + 46 + view.getUint16(central + 28, true) +
    view.getUint16(central + 30, true) +
    view.getUint16(central + 32, true);
  view.setUint32(second + 20, 100_000, true);
  view.setUint32(second + 24, 100_000, true);
  await expectFormatError(bytes, /runs into the central directory/);
});

Deno.test("readPth() throws only checkpoint errors for random truncations and byte changes", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 0, max: valid.length }),
      fc.array(fc.tuple(fc.nat({ max: valid.length - 1 }), fc.integer({ min: 0, max: 255 })), {
        maxLength: 8,
      }),
      async (length, changes) => {
        const bytes = valid.slice();
        for (const [at, value] of changes) bytes[at] = value;
        try {
          await openAndReadAll(bytes.slice(0, length));
        } catch (error) {
          if (!isCheckpointError(error)) throw error;
        }
      },
    ),
    { numRuns: 300 },
  );
});
