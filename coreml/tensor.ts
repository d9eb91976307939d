/**
 * Tensor types and tensor data as the MIL IR holds them: a dtype plus a static shape, and
 * row-major values in the dtype's typed array. Also the byte form shared by weight.bin blobs and
 * immediate `bytes` values.
 *
 * @module
 */

import {
  type DType,
  DTYPE_INFO,
  type DTypeValues,
  isSubByte,
  isValuesOf,
  type TensorValues,
} from "./dtype.ts";
import { elementCount } from "../shape.ts";
import { TensorShapeError } from "./errors.ts";
import { packBits, packedByteLength, unpackBits } from "./sub_byte.ts";

/** A tensor type with a static shape; a scalar has shape `[]`. */
export interface TensorType {
  /** Element type. */
  readonly dtype: DType;
  /** Size of every dimension, outermost first. */
  readonly shape: readonly number[];
}

/** A tensor with its values, row-major, one element per array slot. */
export type Tensor<D extends DType = DType> = D extends DType ? {
    readonly dtype: D;
    readonly shape: readonly number[];
    readonly values: DTypeValues[D];
  }
  : never;

/** Returns `{dtype, shape}` after checking the shape (see {@link checkShape}). */
export function tensorType(dtype: DType, shape: readonly number[]): TensorType {
  checkShape(shape);
  return { dtype, shape: [...shape] };
}

/**
 * Checks that a shape can describe a tensor and returns its element count (1 for a scalar).
 *
 * @throws {TensorShapeError} when a dimension is not a non-negative integer or the product is
 * not a safe integer
 */
export function checkShape(shape: readonly number[]): number {
  const bad = shape.find((dim) => !Number.isSafeInteger(dim) || dim < 0);
  if (bad !== undefined) {
    throw new TensorShapeError(
      `Cannot use shape [${shape}]: dimension "${bad}" is not a non-negative integer`,
    );
  }
  const count = elementCount(shape);
  if (count === Infinity) {
    throw new TensorShapeError(`Cannot use shape [${shape}]: it has too many elements`);
  }
  return count;
}

/** Whether two tensor types have the same dtype and shape. */
export function sameTensorType(a: TensorType, b: TensorType): boolean {
  return a.dtype === b.dtype && a.shape.length === b.shape.length &&
    a.shape.every((d, i) => d === b.shape[i]);
}

/** Formats a tensor type the way coremltools prints one, e.g. `fp16[1, 4]`. */
export function formatTensorType(type: TensorType): string {
  return `${type.dtype}[${type.shape.join(", ")}]`;
}

/**
 * Checks that `values` is the dtype's array class, holds exactly one element per shape element,
 * and stays in the dtype's range (int4, uint4, uint6, bool).
 *
 * @param what names the tensor in the error, e.g. `const "w"`
 * @throws {TensorShapeError} on any mismatch
 */
export function checkTensor(tensor: Tensor, what: string): void {
  const { dtype, shape, values } = tensor;
  const count = checkShape(shape);
  if (!isValuesOf(dtype, values)) {
    throw new TensorShapeError(
      `Cannot use ${what}: ${dtype} values must be held in a ${arrayClassName(dtype)}`,
    );
  }
  if (values.length !== count) {
    throw new TensorShapeError(
      `Cannot use ${what}: shape [${shape}] has ${count} elements but ${values.length} values ` +
        `were given`,
    );
  }
  const range = DTYPE_INFO[dtype].range;
  if (range !== undefined) {
    const [lo, hi] = range;
    const numbers = values as Int8Array | Uint8Array;
    const bad = firstOutside(numbers, lo, hi);
    if (bad >= 0) {
      throw new TensorShapeError(
        `Cannot use ${what}: ${dtype} value "${numbers[bad]}" at index ${bad} is outside ` +
          `[${lo}, ${hi}]`,
      );
    }
  }
}

/**
 * Index of the first value outside `[lo, hi]`, or -1. Runs over the quarter billion int4 weights
 * of a 1B model, twice, so it checks four bytes at a time where it can (`findIndex` with a
 * callback took tens of seconds there).
 */
function firstOutside(values: Int8Array | Uint8Array, lo: number, hi: number): number {
  let i = 0;
  const span = hi - lo;
  // With span + 1 a power of two below 256, v is in range iff (byte - lo) mod 256 has no bit
  // above `span`: add -lo to all four bytes of a word at once, without carries between bytes.
  if (span >= 0 && span < 255 && (span & (span + 1)) === 0 && values.byteOffset % 4 === 0) {
    const words = new Uint32Array(values.buffer, values.byteOffset, values.length >>> 2);
    const add = ((-lo) & 0xff) * 0x01010101;
    const outside = ~(span * 0x01010101);
    let w = 0;
    for (; w < words.length; w++) {
      const x = words[w]!;
      const sum = ((x & 0x7f7f7f7f) + (add & 0x7f7f7f7f)) ^ ((x ^ add) & 0x80808080);
      if ((sum & outside) !== 0) break;
    }
    i = w * 4;
  }
  for (; i < values.length; i++) {
    const v = values[i]!;
    if (v < lo || v > hi) return i;
  }
  return -1;
}

function arrayClassName(dtype: DType): string {
  const names: Record<DType, string> = {
    fp16: "Uint16Array of binary16 bit patterns",
    fp32: "Float32Array",
    int32: "Int32Array",
    int8: "Int8Array",
    uint8: "Uint8Array",
    int4: "Int8Array (one element per slot)",
    uint4: "Uint8Array (one element per slot)",
    uint6: "Uint8Array (one element per slot)",
    bool: "Uint8Array of 0/1",
    string: "string array",
  };
  return names[dtype];
}

// weight.bin and immediate `bytes` values are little-endian; viewing typed arrays as bytes is only
// right on a little-endian host, which every platform Deno supports is.
if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
  throw new Error("Cannot load the Core ML writer: this host is big-endian, which is unsupported");
}

/**
 * The stored bytes of a numeric tensor's values: little-endian elements, sub-byte types packed
 * LSB-first. Shares memory with `values` where no packing is needed.
 */
export function valuesToBytes(
  dtype: DType,
  values: Exclude<TensorValues, readonly string[]>,
): Uint8Array {
  if (isSubByte(dtype)) return packBits(values as Int8Array | Uint8Array, DTYPE_INFO[dtype].bits);
  return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
}

/**
 * The inverse of {@link valuesToBytes}: decodes `count` elements of `dtype` from stored bytes.
 * The caller has checked that `bytes` holds exactly {@link storedByteLength} bytes.
 */
export function valuesFromBytes<D extends Exclude<DType, "string">>(
  dtype: D,
  bytes: Uint8Array,
  count: number,
): DTypeValues[D] {
  const { bits } = DTYPE_INFO[dtype];
  if (isSubByte(dtype)) return unpackBits(bytes, bits, count, dtype === "int4") as DTypeValues[D];
  // Copy so the result is aligned and owns its memory, whatever buffer `bytes` views.
  const buffer = bytes.slice().buffer;
  const make: { [K in Exclude<DType, "string">]: (b: ArrayBuffer) => DTypeValues[K] } = {
    fp16: (b) => new Uint16Array(b),
    fp32: (b) => new Float32Array(b),
    int32: (b) => new Int32Array(b),
    int8: (b) => new Int8Array(b),
    uint8: (b) => new Uint8Array(b),
    int4: (b) => new Int8Array(b),
    uint4: (b) => new Uint8Array(b),
    uint6: (b) => new Uint8Array(b),
    bool: (b) => new Uint8Array(b),
  };
  return make[dtype](buffer);
}

/** Bytes that `count` elements of a numeric dtype occupy on disk. */
export function storedByteLength(dtype: Exclude<DType, "string">, count: number): number {
  return packedByteLength(count, DTYPE_INFO[dtype].bits);
}

/**
 * Converts numbers to binary16 bit patterns, rounding to nearest-even as NumPy's
 * `astype(float16)` does.
 */
export function float16Bits(values: ArrayLike<number>): Uint16Array {
  return new Uint16Array(Float16Array.from(values).buffer);
}

/** Converts binary16 bit patterns to numbers. */
export function float16Values(bits: Uint16Array): Float32Array {
  return Float32Array.from(new Float16Array(bits.buffer, bits.byteOffset, bits.length));
}

/**
 * Builds a tensor from plain numbers (or strings), converting to the dtype's array: fp16 values
 * are rounded to binary16, bools become 0/1.
 *
 * @example An int32 vector and a string scalar
 * ```ts
 * import assert from "node:assert";
 * import { tensor } from "./tensor.ts";
 * const perm = tensor("int32", [4], [0, 2, 1, 3]);
 * const dtype = tensor("string", [], ["fp16"]);
 * assert.deepStrictEqual(perm.values, Int32Array.of(0, 2, 1, 3));
 * assert.deepStrictEqual(dtype.values, ["fp16"]);
 * ```
 * @throws {TensorShapeError} when the count or range does not fit (see {@link checkTensor})
 */
export function tensor<D extends DType>(
  dtype: D,
  shape: readonly number[],
  values: D extends "string" ? readonly string[] : ArrayLike<number | boolean>,
): Tensor<D> {
  const numbers = () => Array.from(values as ArrayLike<number | boolean>, Number);
  const make: { [K in DType]: () => DTypeValues[K] } = {
    fp16: () => float16Bits(numbers()),
    fp32: () => Float32Array.from(numbers()),
    int32: () => Int32Array.from(numbers()),
    int8: () => Int8Array.from(numbers()),
    uint8: () => Uint8Array.from(numbers()),
    int4: () => Int8Array.from(numbers()),
    uint4: () => Uint8Array.from(numbers()),
    uint6: () => Uint8Array.from(numbers()),
    bool: () => Uint8Array.from(numbers()),
    string: () => [...(values as readonly string[])],
  };
  const result = { dtype, shape: [...shape], values: make[dtype]() } as unknown as Tensor<D>;
  checkTensor(result, `a ${dtype}[${shape}] tensor`);
  return result;
}

/** A rank-0 tensor: `scalar("int32", -1)`, `scalar("bool", false)`, `scalar("string", "fp16")`. */
export function scalar<D extends DType>(
  dtype: D,
  value: D extends "string" ? string : number | boolean,
): Tensor<D> {
  return tensor(dtype, [], [value] as never);
}
