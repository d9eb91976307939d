/**
 * GGUF's symmetric block types taken apart instead of dequantized: the signed integers and the
 * fp16 scale of every block of 32, so that a writer can store them as they are. Q8_0 holds
 * `x = d * q` with q in [-128, 127]; Q4_0 holds `x = d * (q - 8)` with q a nibble, so `q - 8` fits
 * a signed int4 (the block layouts are in dequantize.ts).
 *
 * @module
 */

import { SUPPORTED_GGML_TYPES } from "../gguf/ggml_types.ts";

/** The block types whose values are `scale * integer`, one scale per 32 values. */
export type SymmetricBlockDType = "Q8_0" | "Q4_0";

/** Values that share one scale in a {@link SymmetricBlockDType}. */
export const SYMMETRIC_BLOCK = 32;

/** Whether `dtype` is a {@link SymmetricBlockDType}. */
export function isSymmetricBlockDType(dtype: string): dtype is SymmetricBlockDType {
  return dtype === "Q8_0" || dtype === "Q4_0";
}

/** Blocks taken apart: `values[i] * scales[i / 32]` is the value llama.cpp dequantizes. */
export interface UnpackedBlocks {
  /** Bits of each integer: 8 for Q8_0, 4 for Q4_0. */
  readonly bits: 4 | 8;
  /** The signed integers, in value order: [-128, 127] (Q8_0) or [-8, 7] (Q4_0). */
  readonly values: Int8Array;
  /** One fp16 scale per block, exactly as stored. */
  readonly scales: Float16Array;
}

/** Splits `bytes`, whole blocks of `dtype`, into integers and scales. */
export function unpackBlocks(
  dtype: SymmetricBlockDType,
  bytes: Uint8Array<ArrayBuffer>,
): UnpackedBlocks {
  const { blockBytes } = SUPPORTED_GGML_TYPES[dtype];
  const blocks = bytes.byteLength / blockBytes;
  if (!Number.isInteger(blocks)) {
    throw new RangeError(`Cannot unpack ${dtype}: ${bytes.byteLength} bytes are not whole blocks`);
  }
  // Every block starts with its fp16 scale at an even offset (both block sizes are even).
  const source = bytes.byteOffset % 2 === 0 ? bytes : bytes.slice();
  const halves = new Float16Array(source.buffer, source.byteOffset, source.byteLength >> 1);
  const scales = new Float16Array(blocks);
  const values = new Int8Array(blocks * SYMMETRIC_BLOCK);
  for (let b = 0, at = 0; b < blocks; b++, at += blockBytes) {
    scales[b] = halves[at >> 1]!;
    const to = b * SYMMETRIC_BLOCK;
    if (dtype === "Q8_0") {
      values.set(new Int8Array(source.buffer, source.byteOffset + at + 2, SYMMETRIC_BLOCK), to);
      continue;
    }
    for (let i = 0; i < 16; i++) {
      const byte = source[at + 2 + i]!;
      values[to + i] = (byte & 15) - 8;
      values[to + 16 + i] = (byte >> 4) - 8;
    }
  }
  return { bits: dtype === "Q8_0" ? 8 : 4, values, scales };
}
