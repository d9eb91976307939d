import { deepStrictEqual, strictEqual, throws } from "node:assert";
import { BlobStorageReader, BlobStorageWriter } from "./blob_storage.ts";
import { CoremlFormatError, TensorShapeError } from "./errors.ts";
import { float16Bits, tensor } from "./tensor.ts";

const DIR = Deno.makeTempDirSync({ prefix: "llamane_blob_test_" });
globalThis.addEventListener("unload", () => Deno.removeSync(DIR, { recursive: true }));

function tempFile(): string {
  return Deno.makeTempFileSync({ dir: DIR, suffix: ".bin" });
}

function hex(bytes: Uint8Array): string {
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join(" ");
}

function writeBlobs(path: string, tensors: Parameters<BlobStorageWriter["append"]>[0][]): number[] {
  using writer = BlobStorageWriter.create(path);
  return tensors.map((t) => writer.append(t));
}

Deno.test("BlobStorageWriter.append() lays out one fp16 blob byte for byte as the format brief's example", () => {
  // Format brief section 3.3: one fp16 tensor with 3 elements.
  const path = tempFile();
  const values = float16Bits([1, -2, 0.5]);
  deepStrictEqual(writeBlobs(path, [{ dtype: "fp16", shape: [3], values }]), [64]);
  const bytes = Deno.readFileSync(path);
  strictEqual(bytes.length, 0x86);
  strictEqual(hex(bytes.subarray(0, 8)), "01 00 00 00 02 00 00 00");
  deepStrictEqual([...bytes.subarray(8, 64)], new Array(56).fill(0));
  strictEqual(
    hex(bytes.subarray(0x40, 0x58)),
    "ef be ad de 01 00 00 00 06 00 00 00 00 00 00 00 80 00 00 00 00 00 00 00",
  );
  deepStrictEqual([...bytes.subarray(0x58, 0x80)], new Array(40).fill(0));
  deepStrictEqual(bytes.subarray(0x80), new Uint8Array(values.buffer));
});

Deno.test("BlobStorageWriter.append() packs int4 LSB-first with padding bits, after an fp16 blob", () => {
  // Format brief section 3.4 and its verification log: the second blob's metadata sits at 192,
  // int4 [1, -1, 7, -8, 3] is stored as F1 87 03 with sizeInBytes 3 and 4 padding bits.
  const path = tempFile();
  const offsets = writeBlobs(path, [
    { dtype: "fp16", shape: [3], values: float16Bits([1, 2, 3]) },
    { dtype: "int4", shape: [5], values: Int8Array.of(1, -1, 7, -8, 3) },
  ]);
  deepStrictEqual(offsets, [64, 192]);
  const bytes = Deno.readFileSync(path);
  const meta = new DataView(bytes.buffer, 192, 64);
  strictEqual(meta.getUint32(0, true), 0xdeadbeef);
  strictEqual(meta.getUint32(4, true), 8);
  strictEqual(meta.getBigUint64(8, true), 3n);
  strictEqual(meta.getBigUint64(16, true), 256n);
  strictEqual(meta.getBigUint64(24, true), 4n);
  strictEqual(hex(bytes.subarray(256)), "f1 87 03");
  strictEqual(new DataView(bytes.buffer).getUint32(0, true), 2);
});

Deno.test("BlobStorageWriter.append() stores identical constants once", () => {
  const path = tempFile();
  using writer = BlobStorageWriter.create(path);
  const w = tensor("fp16", [2, 8], Array.from({ length: 16 }, (_, i) => i / 4));
  const first = writer.append(w);
  strictEqual(
    writer.append(tensor("fp16", [16], Array.from({ length: 16 }, (_, i) => i / 4))),
    first,
  );
  // Same bytes under another dtype, or the same packed bytes with another element count, differ.
  const asInt8 = writer.append({
    dtype: "uint8",
    shape: [32],
    values: new Uint8Array(w.values.buffer),
  });
  const three = writer.append({ dtype: "int4", shape: [3], values: Int8Array.of(1, 2, 3) });
  const four = writer.append({ dtype: "int4", shape: [4], values: Int8Array.of(1, 2, 3, 0) });
  strictEqual(new Set([first, asInt8, three, four]).size, 4);
  strictEqual(writer.blobCount, 4);
  writer.close();
  strictEqual(new DataView(Deno.readFileSync(path).buffer).getUint32(0, true), 4);
});

Deno.test("BlobStorageWriter writes identical bytes and digests for identical input", () => {
  const blobs = () => [
    tensor("fp32", [12], Array.from({ length: 12 }, (_, i) => Math.sin(i))),
    tensor("uint4", [7], [0, 15, 3, 9, 1, 2, 8]),
    tensor("int8", [10], [-128, 127, 0, 1, -1, 5, 6, 7, 8, 9]),
  ];
  const digests = [tempFile(), tempFile()].map((path) => {
    using writer = BlobStorageWriter.create(path);
    for (const b of blobs()) writer.append(b);
    return [writer.digest(), Deno.readFileSync(path)] as const;
  });
  strictEqual(digests[0]![0], digests[1]![0]);
  deepStrictEqual(digests[0]![1], digests[1]![1]);
});

Deno.test("BlobStorageWriter.append() rejects values outside the dtype's range", () => {
  using writer = BlobStorageWriter.create(tempFile());
  throws(
    () => writer.append({ dtype: "int4", shape: [2], values: Int8Array.of(1, 8) }),
    TensorShapeError,
  );
  throws(
    () => writer.append({ dtype: "fp32", shape: [3], values: Float32Array.of(1, 2) }),
    TensorShapeError,
  );
});

Deno.test("BlobStorageReader reads back every dtype it writes", () => {
  const path = tempFile();
  const tensors = [
    tensor("fp16", [3], [1.5, -2, 65504]),
    tensor("fp32", [2, 2], [1, -1, 0.25, 3e38]),
    tensor("int32", [3], [-2147483648, 0, 2147483647]),
    tensor("int8", [3], [-128, 0, 127]),
    tensor("uint8", [3], [0, 128, 255]),
    tensor("int4", [5], [1, -1, 7, -8, 3]),
    tensor("uint4", [3], [0, 15, 7]),
  ];
  const offsets = writeBlobs(path, tensors);
  using reader = BlobStorageReader.open(path);
  strictEqual(reader.blobCount, tensors.length);
  deepStrictEqual(reader.records().map((r) => r.offsetBytes), offsets);
  tensors.forEach((t, i) => {
    deepStrictEqual(reader.readValues(offsets[i]!, t.dtype, t.values.length), t.values);
  });
});

/** Writes two valid blobs, lets `corrupt` edit the bytes, and returns the file's path. */
function corrupted(corrupt: (bytes: Uint8Array, view: DataView) => Uint8Array | void): string {
  const path = tempFile();
  writeBlobs(path, [tensor("fp16", [3], [1, 2, 3]), tensor("int4", [5], [1, -1, 7, -8, 3])]);
  const bytes = Deno.readFileSync(path);
  Deno.writeFileSync(path, corrupt(bytes, new DataView(bytes.buffer)) ?? bytes);
  return path;
}

function rejects(path: string, pattern: RegExp, read: (r: BlobStorageReader) => unknown): void {
  throws(() => {
    using reader = BlobStorageReader.open(path);
    read(reader);
  }, (error: unknown) => error instanceof CoremlFormatError && pattern.test(error.message));
}

Deno.test("BlobStorageReader.open() rejects a short header, another version and an impossible count", () => {
  rejects(
    corrupted((b) => b.subarray(0, 40)),
    /64-byte header runs past the end of the file \(size 40\)/,
    () => {},
  );
  rejects(
    corrupted((_, v) => v.setUint32(4, 1, true)),
    /storage version "1" is unsupported/,
    () => {},
  );
  rejects(corrupted((_, v) => v.setUint32(0, 9, true)), /declares 9 blobs but the file/, () => {});
});

Deno.test("BlobStorageReader.record() rejects bad offsets and records", () => {
  const valid = corrupted(() => {});
  rejects(valid, /not a multiple of 64/, (r) => r.record(100));
  rejects(valid, /not a multiple of 64/, (r) => r.record(0));
  rejects(valid, /runs past the end of the file/, (r) => r.record(448));
  rejects(valid, /holds int4 data, but the model declares fp16/, (r) => r.record(192, "fp16"));
  rejects(
    corrupted((_, v) => v.setUint32(192, 0, true)),
    /sentinel 0x00000000, expected 0xDEADBEEF/,
    (r) => r.record(192),
  );
  rejects(
    corrupted((_, v) => v.setUint32(196, 5, true)),
    /unsupported dtype code "5"/,
    (r) => r.record(192),
  );
  rejects(
    corrupted((_, v) => v.setBigUint64(208, 300n, true)),
    /puts its data at 300, expected 256/,
    (r) => r.record(192),
  );
  rejects(
    corrupted((_, v) => v.setBigUint64(200, 4n, true)),
    /run past the end of the file \(size 259\)/,
    (r) => r.record(192),
  );
  rejects(
    corrupted((_, v) => v.setBigUint64(216, 8n, true)),
    /not a whole number of elements/,
    (r) => r.record(192),
  );
  rejects(
    corrupted((_, v) => v.setBigUint64(216, 3n, true)),
    /not a whole number of elements/,
    (r) => r.record(192),
  );
  rejects(
    corrupted((_, v) => v.setBigUint64(88, 2n, true)),
    /not a whole number of elements/,
    (r) => r.record(64),
  );
  rejects(
    corrupted((_, v) => v.setBigUint64(72, 5n, true)),
    /not a whole number of elements/,
    (r) => r.record(64),
  );
  rejects(valid, /holds 5 elements, but the model declares 6/, (r) => r.readValues(192, "int4", 6));
});

Deno.test("BlobStorageReader.records() walks every record and stops at the first bad one", () => {
  rejects(
    corrupted((_, v) => v.setUint32(192, 0x12345678, true)),
    /offset 192 has sentinel 0x12345678/,
    (r) => r.records(),
  );
});

Deno.test("BlobStorageReader never throws anything but CoremlFormatError on truncated files", () => {
  const whole = Deno.readFileSync(corrupted(() => {}));
  for (let size = 0; size < whole.length; size++) {
    const path = tempFile();
    Deno.writeFileSync(path, whole.subarray(0, size));
    throws(() => {
      using reader = BlobStorageReader.open(path);
      reader.records();
    }, CoremlFormatError);
  }
});
