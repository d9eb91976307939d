import assert from "node:assert/strict";
import { TensorReadError } from "./errors.ts";
import { LazySource, MAX_READ_ELEMENTS, type StorageBytes } from "./lazy_source.ts";
import { RandomAccessFile } from "./random_access_file.ts";
import { rowMajorStrides } from "./strided_view.ts";
import { fixture } from "./_testing.ts";

/** An in-memory storage of `bytes` that records every read. */
function spyStorage(bytes: Uint8Array): StorageBytes & { reads: [number, number][] } {
  const reads: [number, number][] = [];
  return {
    reads,
    read: (start, length) => {
      reads.push([start, length]);
      return Promise.resolve(bytes.slice(start, start + length));
    },
  };
}

async function sourceWith(
  shape: number[],
  strides: number[],
  storage: StorageBytes,
): Promise<LazySource> {
  // The file is only what close() releases; the tensor's bytes come from `storage`.
  const file = await RandomAccessFile.open(fixture("views.pth"));
  return new LazySource(file, [{
    info: { name: "w", dtype: "BF16", shape },
    view: { offset: 0, shape, strides },
    storage,
  }], "pth");
}

Deno.test("readFloat32() reads only the bytes of the rows asked for", async () => {
  const shape = [1000, 8];
  const bytes = new Uint8Array(1000 * 8 * 2).map((_, i) => i * 7);
  const storage = spyStorage(bytes);
  using source = await sourceWith(shape, rowMajorStrides(shape), storage);
  const all = await source.readFloat32("w");
  storage.reads.length = 0;
  const rows = await source.readFloat32("w", { start: 10, end: 12 });
  assert.deepEqual(storage.reads, [[10 * 8 * 2, 2 * 8 * 2]]);
  assert.deepEqual(rows, all.subarray(10 * 8, 12 * 8));
});

Deno.test("readFloat32() reads a transposed view's rows from the span they touch", async () => {
  // A [8, 1000] view of a row-major [1000, 8] storage: row r is column r of the storage.
  const bytes = new Uint8Array(1000 * 8 * 2).map((_, i) => i * 13);
  const storage = spyStorage(bytes);
  using source = await sourceWith([8, 1000], [1, 8], storage);
  const all = await source.readFloat32("w");
  storage.reads.length = 0;
  const rows = await source.readFloat32("w", { start: 3, end: 5 });
  assert.deepEqual(storage.reads, [[3 * 2, (999 * 8 + 4 + 1 - 3) * 2]]);
  assert.deepEqual(rows, all.subarray(3 * 1000, 5 * 1000));
});

Deno.test("readFloat32() refuses a read of more than MAX_READ_ELEMENTS before reading anything", async () => {
  const storage = spyStorage(new Uint8Array(2));
  using source = await sourceWith([MAX_READ_ELEMENTS, 2], [0, 0], storage);
  await assert.rejects(
    source.readFloat32("w"),
    (error: Error) =>
      error instanceof TensorReadError && /read it in row ranges/.test(error.message),
  );
  assert.deepEqual(storage.reads, []);
  assert.equal((await source.readFloat32("w", { start: 0, end: 4 })).length, 8);
});
