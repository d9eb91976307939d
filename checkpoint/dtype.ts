/**
 * Facts about the types a checkpoint stores: bytes per element, and the block layouts of the
 * quantized types GGUF files hold.
 *
 * @module
 */

import { SUPPORTED_GGML_TYPES } from "../gguf/ggml_types.ts";
import type { BlockDType, ElementDType, StorageDType } from "./tensor_source.ts";

/** Bytes per element of each element dtype. */
export const DTYPE_BYTES: Readonly<Record<ElementDType, number>> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

/** Whether `name` is one of the element dtypes the readers support (safetensors spelling). */
export function isElementDType(name: string): name is ElementDType {
  return Object.hasOwn(DTYPE_BYTES, name);
}

/** Whether `dtype` packs values in blocks. */
export function isBlockDType(dtype: StorageDType): dtype is BlockDType {
  return !isElementDType(dtype);
}

/** Values per block and bytes per block of `dtype` (blocks of one value for element dtypes). */
export function blockLayout(dtype: StorageDType): { blockElements: number; blockBytes: number } {
  return isBlockDType(dtype)
    ? SUPPORTED_GGML_TYPES[dtype]
    : { blockElements: 1, blockBytes: DTYPE_BYTES[dtype] };
}

/** Bytes that `elements` values of `dtype` take (whole blocks for block dtypes). */
export function storedBytes(dtype: StorageDType, elements: number): number {
  const { blockElements, blockBytes } = blockLayout(dtype);
  return Math.ceil(elements / blockElements) * blockBytes;
}
