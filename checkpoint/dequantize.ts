/**
 * Dequantization of GGUF's block-quantized types to fp32, equal bit for bit to llama.cpp's own
 * (and to the `gguf` Python package's): every product and difference is rounded to fp32 in the
 * same order they round it. Block layouts, per block of `n` values:
 *
 * - Q8_0 (32): fp16 scale d, 32 int8 q; x = d*q.
 * - Q4_0 (32): fp16 d, 16 bytes: value i < 16 is the low nibble of byte i, value 16 + i the high
 *   nibble; x = d*(q - 8).
 * - Q4_1 (32): fp16 d, fp16 m, then Q4_0's nibbles; x = d*q + m.
 * - Q4_K (256): fp16 d and dmin, 12 bytes of eight 6-bit scales and mins, 128 bytes of nibbles
 *   (32 bytes per pair of 32-value sub-blocks: low nibbles first); x = (d*scale)*q - dmin*min.
 * - Q5_K (256): as Q4_K with 32 bytes of high bits before the nibbles (bit s of byte i is the high
 *   bit of value i of sub-block s).
 * - Q6_K (256): 128 bytes of low nibbles, 64 bytes of 2-bit highs, 16 int8 scales, fp16 d;
 *   x = (d*scale)*(q - 32), one scale per 16 values.
 *
 * @module
 */

import type { BlockDType } from "./tensor_source.ts";
import { SUPPORTED_GGML_TYPES } from "../gguf/ggml_types.ts";

const fround = Math.fround;

/** Dequantizes `bytes`, whole blocks of `dtype`, to fp32. */
export function dequantize(
  dtype: BlockDType,
  bytes: Uint8Array<ArrayBuffer>,
): Float32Array<ArrayBuffer> {
  const { blockElements, blockBytes } = SUPPORTED_GGML_TYPES[dtype];
  const blocks = bytes.byteLength / blockBytes;
  if (!Number.isInteger(blocks)) {
    throw new RangeError(
      `Cannot dequantize ${dtype}: ${bytes.byteLength} bytes are not whole blocks`,
    );
  }
  // Every fp16 field sits at an even offset within an even-sized block.
  const source = bytes.byteOffset % 2 === 0 ? bytes : bytes.slice();
  const halves = new Float16Array(source.buffer, source.byteOffset, source.byteLength >> 1);
  const out = new Float32Array(blocks * blockElements);
  const decode = DECODERS[dtype];
  for (let b = 0; b < blocks; b++) decode(source, halves, b * blockBytes, out, b * blockElements);
  return out;
}

type BlockDecoder = (
  bytes: Uint8Array,
  halves: Float16Array,
  at: number,
  out: Float32Array,
  to: number,
) => void;

function q8_0(bytes: Uint8Array, halves: Float16Array, at: number, out: Float32Array, to: number) {
  const d = halves[at >> 1]!;
  for (let i = 0; i < 32; i++) out[to + i] = d * ((bytes[at + 2 + i]! << 24) >> 24);
}

function q4_0(bytes: Uint8Array, halves: Float16Array, at: number, out: Float32Array, to: number) {
  const d = halves[at >> 1]!;
  for (let i = 0; i < 16; i++) {
    const byte = bytes[at + 2 + i]!;
    out[to + i] = d * ((byte & 15) - 8);
    out[to + 16 + i] = d * ((byte >> 4) - 8);
  }
}

function q4_1(bytes: Uint8Array, halves: Float16Array, at: number, out: Float32Array, to: number) {
  const d = halves[at >> 1]!;
  const m = halves[(at >> 1) + 1]!;
  for (let i = 0; i < 16; i++) {
    const byte = bytes[at + 4 + i]!;
    out[to + i] = fround(d * (byte & 15)) + m;
    out[to + 16 + i] = fround(d * (byte >> 4)) + m;
  }
}

/** The eight 6-bit scales and mins of a Q4_K or Q5_K block, from its 12 packed bytes at `at`. */
function scalesAndMins(bytes: Uint8Array, at: number, scales: Uint8Array, mins: Uint8Array) {
  for (let j = 0; j < 4; j++) {
    const low = bytes[at + j]!;
    const high = bytes[at + 4 + j]!;
    const both = bytes[at + 8 + j]!;
    scales[j] = low & 63;
    mins[j] = high & 63;
    scales[j + 4] = (both & 15) | ((low >> 2) & 48);
    mins[j + 4] = (both >> 4) | ((high >> 2) & 48);
  }
}

const scales = new Uint8Array(8);
const mins = new Uint8Array(8);

function q4_k(bytes: Uint8Array, halves: Float16Array, at: number, out: Float32Array, to: number) {
  const d = halves[at >> 1]!;
  const dmin = halves[(at >> 1) + 1]!;
  scalesAndMins(bytes, at + 4, scales, mins);
  const qs = at + 16;
  for (let s = 0; s < 8; s++) {
    const scale = fround(d * scales[s]!);
    const min = fround(dmin * mins[s]!);
    const base = qs + 32 * (s >> 1);
    const shift = 4 * (s & 1);
    for (let i = 0; i < 32; i++) {
      out[to + 32 * s + i] = fround(scale * ((bytes[base + i]! >> shift) & 15)) - min;
    }
  }
}

function q5_k(bytes: Uint8Array, halves: Float16Array, at: number, out: Float32Array, to: number) {
  const d = halves[at >> 1]!;
  const dmin = halves[(at >> 1) + 1]!;
  scalesAndMins(bytes, at + 4, scales, mins);
  const qh = at + 16;
  const qs = at + 48;
  for (let s = 0; s < 8; s++) {
    const scale = fround(d * scales[s]!);
    const min = fround(dmin * mins[s]!);
    const base = qs + 32 * (s >> 1);
    const shift = 4 * (s & 1);
    for (let i = 0; i < 32; i++) {
      const q = ((bytes[base + i]! >> shift) & 15) | (((bytes[qh + i]! >> s) & 1) << 4);
      out[to + 32 * s + i] = fround(scale * q) - min;
    }
  }
}

function q6_k(bytes: Uint8Array, halves: Float16Array, at: number, out: Float32Array, to: number) {
  const ql = at;
  const qh = at + 128;
  const scaleAt = at + 192;
  const d = halves[(at + 208) >> 1]!;
  for (let p = 0; p < 256; p++) {
    // Values come in two halves of 128; within a half, value r takes its low nibble from byte
    // r % 64 (shifted by 4 for r >= 64) and its two high bits from byte r % 32 (shift 2 * (r >> 5)).
    const half = p >> 7;
    const r = p & 127;
    const low = (bytes[ql + 64 * half + (r & 63)]! >> (4 * (r >> 6))) & 15;
    const high = (bytes[qh + 32 * half + (r & 31)]! >> (2 * (r >> 5))) & 3;
    const scale = fround(d * ((bytes[scaleAt + (p >> 4)]! << 24) >> 24));
    out[to + p] = scale * ((low | (high << 4)) - 32);
  }
}

const DECODERS: Readonly<Record<BlockDType, BlockDecoder>> = {
  Q8_0: q8_0,
  Q4_0: q4_0,
  Q4_1: q4_1,
  Q4_K: q4_k,
  Q5_K: q5_k,
  Q6_K: q6_k,
};
