/**
 * Property tests of the safetensors header reader: headers built from plausible and hostile
 * entries (unknown dtypes, negative or huge dimensions, offsets out of order, past the end,
 * overlapping) over data of any length. The reader either lists tensors whose every byte lies in
 * the file and reads each one, or throws a checkpoint error.
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import { isCheckpointError, withTempFile } from "./_testing.ts";
import { DTYPE_BYTES } from "./dtype.ts";
import { RandomAccessFile } from "./random_access_file.ts";
import { openSafetensors } from "./safetensors.ts";
import { elementCount } from "../shape.ts";

const dimension = fc.oneof(
  fc.integer({ min: 0, max: 6 }),
  fc.constantFrom(-1, 2 ** 31, 2 ** 53, 1.5, "2", null),
);
const offset = fc.oneof(
  fc.integer({ min: 0, max: 200 }),
  fc.constantFrom(-8, 2 ** 40, 2 ** 64, 0.5, "8", null),
);
const entry = fc.record({
  dtype: fc.oneof(fc.constantFrom(...Object.keys(DTYPE_BYTES)), fc.string({ maxLength: 6 })),
  shape: fc.oneof(fc.array(dimension, { maxLength: 4 }), fc.jsonValue()),
  data_offsets: fc.oneof(fc.tuple(offset, offset), fc.array(offset, { maxLength: 3 })),
});
const header = fc.dictionary(
  fc.oneof(fc.stringMatching(/^[a-z.]{1,8}$/), fc.constant("__metadata__")),
  fc.oneof(entry, entry, fc.jsonValue()),
  { maxKeys: 5 },
);

/** A safetensors file: an 8-byte length, `header` as JSON, and `dataLength` bytes of data. */
function safetensorsFile(value: unknown, dataLength: number): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(value));
  const bytes = new Uint8Array(8 + json.length + dataLength);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(json.length), true);
  bytes.set(json, 8);
  for (let i = 8 + json.length; i < bytes.length; i++) bytes[i] = i * 37;
  return bytes;
}

Deno.test("readSafetensors() lists only tensors the file holds, or throws a checkpoint error", async () => {
  await fc.assert(
    fc.asyncProperty(header, fc.integer({ min: 0, max: 256 }), async (value, dataLength) => {
      await withTempFile(safetensorsFile(value, dataLength), async (path) => {
        let source;
        try {
          source = await openSafetensors(await RandomAccessFile.open(path));
        } catch (error) {
          assert.ok(isCheckpointError(error), `${(error as Error).name}: ${error}`);
          return;
        }
        using opened = source;
        let bytes = 0;
        for (const info of opened.list()) {
          const count = elementCount(info.shape);
          const itemBytes = (DTYPE_BYTES as Readonly<Record<string, number>>)[info.dtype];
          assert.ok(itemBytes !== undefined, `safetensors has no dtype ${info.dtype}`);
          bytes += count * itemBytes;
          assert.equal((await opened.readFloat32(info.name)).length, count);
        }
        assert.ok(bytes <= dataLength, `${bytes} bytes of tensors in ${dataLength} of data`);
      });
    }),
    { numRuns: 400 },
  );
});
