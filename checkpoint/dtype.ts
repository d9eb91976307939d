/**
 * Facts about the element types a checkpoint stores.
 *
 * @module
 */

import type { StorageDType } from "./tensor_source.ts";

/** Bytes per element of each stored dtype. */
export const DTYPE_BYTES: Readonly<Record<StorageDType, number>> = {
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

/** Whether `name` is one of the dtypes the readers support (safetensors spelling). */
export function isStorageDType(name: string): name is StorageDType {
  return Object.hasOwn(DTYPE_BYTES, name);
}
