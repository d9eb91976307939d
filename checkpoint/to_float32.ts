/**
 * Conversion of a stored tensor's raw little-endian bytes to fp32. Each dtype is converted in
 * one pass over typed arrays (the engine's own conversions where it has them), never element by
 * element through a DataView, so a 64 MB tensor converts at memory speed. Typed arrays use the
 * platform's byte order: every platform Deno ships for is little-endian, like the files.
 *
 * @module
 */

import { DTYPE_BYTES, isBlockDType } from "./dtype.ts";
import { dequantize } from "./dequantize.ts";
import type { StorageDType } from "./tensor_source.ts";

const TWO_TO_32 = 4294967296;

/**
 * Converts `bytes` (whole elements or blocks of `dtype`, row-major) to fp32. An fp32 buffer the
 * result would merely copy is returned as a view of the same memory. Integers beyond 2^24 round to
 * the nearest fp32 (int64 through fp64 first); bools become 0 or 1.
 */
export function toFloat32(
  dtype: StorageDType,
  bytes: Uint8Array<ArrayBuffer>,
): Float32Array<ArrayBuffer> {
  if (isBlockDType(dtype)) return dequantize(dtype, bytes);
  const itemBytes = DTYPE_BYTES[dtype];
  const count = bytes.byteLength / itemBytes;
  const { buffer, byteOffset } = bytes.byteOffset % itemBytes === 0 ? bytes : bytes.slice();
  switch (dtype) {
    case "F32":
      if (byteOffset === 0 && buffer.byteLength === bytes.byteLength) {
        return new Float32Array(buffer);
      }
      return new Float32Array(new Float32Array(buffer, byteOffset, count));
    case "F16":
      return new Float32Array(new Float16Array(buffer, byteOffset, count));
    case "BF16": {
      // bf16 is the top half of an fp32: shift the bits into place.
      const from = new Uint16Array(buffer, byteOffset, count);
      const to = new Uint32Array(count);
      for (let i = 0; i < count; i++) to[i] = from[i]! << 16;
      return new Float32Array(to.buffer);
    }
    case "F64":
      return new Float32Array(new Float64Array(buffer, byteOffset, count));
    case "I64": {
      const halves = new Int32Array(buffer, byteOffset, count * 2);
      const to = new Float32Array(count);
      for (let i = 0; i < count; i++) {
        to[i] = halves[2 * i + 1]! * TWO_TO_32 + (halves[2 * i]! >>> 0);
      }
      return to;
    }
    case "I32":
      return new Float32Array(new Int32Array(buffer, byteOffset, count));
    case "I16":
      return new Float32Array(new Int16Array(buffer, byteOffset, count));
    case "I8":
      return new Float32Array(new Int8Array(buffer, byteOffset, count));
    case "U8":
      return new Float32Array(new Uint8Array(buffer, byteOffset, count));
    case "BOOL": {
      const from = new Uint8Array(buffer, byteOffset, count);
      const to = new Float32Array(count);
      for (let i = 0; i < count; i++) to[i] = from[i] === 0 ? 0 : 1;
      return to;
    }
  }
}
