/**
 * The element types llamane writes into MIL programs, with their codes in model.mlmodel
 * (`MILSpec.DataType`) and in weight.bin (`BlobDataType`, a different numbering), and the typed
 * array that holds their values in memory.
 *
 * @module
 */

/**
 * A MIL element type. `fp16` values are held as IEEE binary16 bit patterns; `int4`, `uint4` and
 * `uint6` one element per array slot (packed only on disk); `bool` as 0/1 bytes.
 */
export type DType =
  | "fp16"
  | "fp32"
  | "int32"
  | "int8"
  | "uint8"
  | "int4"
  | "uint4"
  | "uint6"
  | "bool"
  | "string";

/** The in-memory array of each dtype's values, one element per slot, row-major. */
export interface DTypeValues {
  /** binary16 bit patterns */
  fp16: Uint16Array;
  /** IEEE binary32 values */
  fp32: Float32Array;
  /** two's-complement 32-bit integers */
  int32: Int32Array;
  /** two's-complement 8-bit integers */
  int8: Int8Array;
  /** unsigned 8-bit integers */
  uint8: Uint8Array;
  /** signed 4-bit integers in [-8, 7], one per slot */
  int4: Int8Array;
  /** unsigned 4-bit integers in [0, 15], one per slot */
  uint4: Uint8Array;
  /** unsigned 6-bit integers in [0, 63], one per slot (palette indices) */
  uint6: Uint8Array;
  /** 0 or 1 */
  bool: Uint8Array;
  /** UTF-8 strings */
  string: readonly string[];
}

/** The float dtypes a model's weights and activations use: a bundle is fp16 or fp32 throughout. */
export type FloatDType = "fp16" | "fp32";

/** The dtypes weight.bin may hold: all but `bool` and `string` (see {@link isBlobDType}). */
export type BlobDType = Exclude<DType, "bool" | "string">;

/** Whether `dtype` may be stored in weight.bin. */
export function isBlobDType(dtype: DType): dtype is BlobDType {
  return DTYPE_INFO[dtype].blobCode !== undefined;
}

/** Values of any dtype. */
export type TensorValues = DTypeValues[DType];

/** What the file formats say about one dtype. */
export interface DTypeInfo {
  /** `MILSpec.DataType` enum value in model.mlmodel. */
  readonly protoCode: number;
  /** `BlobDataType` code in weight.bin, or `undefined` when the dtype cannot live there. */
  readonly blobCode: number | undefined;
  /** Bits per element on disk; 0 for strings. */
  readonly bits: number;
  /** Smallest and largest value an element may hold, for the integer dtypes that need checking. */
  readonly range: readonly [number, number] | undefined;
}

/** Format facts of every supported dtype. */
export const DTYPE_INFO: Readonly<Record<DType, DTypeInfo>> = {
  fp16: { protoCode: 10, blobCode: 1, bits: 16, range: undefined },
  fp32: { protoCode: 11, blobCode: 2, bits: 32, range: undefined },
  int32: { protoCode: 23, blobCode: 14, bits: 32, range: undefined },
  int8: { protoCode: 21, blobCode: 4, bits: 8, range: undefined },
  uint8: { protoCode: 31, blobCode: 3, bits: 8, range: undefined },
  int4: { protoCode: 25, blobCode: 8, bits: 4, range: [-8, 7] },
  uint4: { protoCode: 35, blobCode: 11, bits: 4, range: [0, 15] },
  uint6: { protoCode: 38, blobCode: 13, bits: 6, range: [0, 63] },
  bool: { protoCode: 1, blobCode: undefined, bits: 8, range: [0, 1] },
  string: { protoCode: 2, blobCode: undefined, bits: 0, range: undefined },
};

/** Every supported dtype, in a stable order. */
export const DTYPES: readonly DType[] = Object.keys(DTYPE_INFO) as DType[];

/** The dtype whose `MILSpec.DataType` code is `code`, or `undefined` when unsupported. */
export function dtypeFromProtoCode(code: number): DType | undefined {
  return DTYPES.find((d) => DTYPE_INFO[d].protoCode === code);
}

/** The dtype whose weight.bin `BlobDataType` code is `code`, or `undefined` when unsupported. */
export function dtypeFromBlobCode(code: number): DType | undefined {
  return DTYPES.find((d) => DTYPE_INFO[d].blobCode === code);
}

/** Whether `dtype` is stored bit-packed (fewer than 8 bits per element). */
export function isSubByte(dtype: DType): boolean {
  return DTYPE_INFO[dtype].bits > 0 && DTYPE_INFO[dtype].bits < 8;
}

/** Whether `values` is the array class that holds `dtype`. */
export function isValuesOf(dtype: DType, values: TensorValues): boolean {
  switch (dtype) {
    case "fp16":
      return values instanceof Uint16Array;
    case "fp32":
      return values instanceof Float32Array;
    case "int32":
      return values instanceof Int32Array;
    case "int8":
    case "int4":
      return values instanceof Int8Array;
    case "uint8":
    case "uint4":
    case "uint6":
    case "bool":
      return values instanceof Uint8Array;
    case "string":
      return Array.isArray(values) && values.every((v) => typeof v === "string");
  }
}
