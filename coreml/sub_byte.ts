/**
 * Bit packing of sub-byte elements (int4, uint4, uint6) as Core ML stores them, in weight.bin and
 * in immediate `bytes` values alike: LSB-first, element `i` in bits `[b*i, b*i + b)` of the
 * little-endian bit stream, so element `2k` of a 4-bit tensor is the low nibble of byte `k`, and a
 * 6-bit element may straddle two bytes.
 *
 * @module
 */

/** Bytes needed to hold `count` elements of `bits` bits each. */
export function packedByteLength(count: number, bits: number): number {
  return Math.ceil((count * bits) / 8);
}

/** Unused bits at the end of the last byte when `count` elements of `bits` bits are packed. */
export function paddingBits(count: number, bits: number): number {
  return (8 - ((count * bits) % 8)) % 8;
}

/**
 * Packs the low `bits` bits of every value LSB-first; the padding bits of the last byte are zero.
 *
 * @param values one element per slot (signed values contribute their two's-complement low bits)
 * @param bits bits per element, 1 to 8
 * @returns `packedByteLength(values.length, bits)` bytes
 */
export function packBits(values: Int8Array | Uint8Array, bits: number): Uint8Array {
  if (bits === 4) return packNibbles(values);
  const mask = (1 << bits) - 1;
  const out = new Uint8Array(packedByteLength(values.length, bits));
  // A window of pending bits, flushed a byte at a time: at most 7 + 8 bits are ever held.
  let pending = 0;
  let held = 0;
  let byte = 0;
  for (let i = 0; i < values.length; i++) {
    pending |= (values[i]! & mask) << held;
    held += bits;
    while (held >= 8) {
      out[byte++] = pending & 0xff;
      pending >>>= 8;
      held -= 8;
    }
  }
  if (held > 0) out[byte] = pending;
  return out;
}

/**
 * {@link packBits} for 4 bits, the case a quarter billion int4 weights take: two elements per
 * byte, element `2k` in the low nibble of byte `k` (and `2k + 1` in the high one). Reads four
 * elements as one 32-bit word where the values are 4-byte aligned: the low nibble of each byte
 * is the element's two's-complement low bits in either case.
 */
function packNibbles(values: Int8Array | Uint8Array): Uint8Array {
  const count = values.length;
  const out = new Uint8Array(packedByteLength(count, 4));
  let i = 0;
  if (values.byteOffset % 4 === 0) {
    const words = new Uint32Array(values.buffer, values.byteOffset, count >>> 2);
    const pairs = new Uint16Array(out.buffer, 0, words.length);
    for (let w = 0; w < words.length; w++) {
      // Bytes e0 e1 e2 e3 (low first) -> nibbles in bytes 0 and 2: e0 | e1 << 4, e2 | e3 << 4.
      const nibbles = words[w]! & 0x0f0f0f0f;
      const merged = nibbles | (nibbles >>> 4);
      pairs[w] = (merged & 0xff) | ((merged >>> 8) & 0xff00);
    }
    i = words.length * 4;
  }
  for (; i + 1 < count; i += 2) out[i >>> 1] = (values[i]! & 15) | ((values[i + 1]! & 15) << 4);
  if (i < count) out[i >>> 1] = values[i]! & 15;
  return out;
}

/**
 * Unpacks `count` elements of `bits` bits from LSB-first packed bytes.
 *
 * @param packed at least `packedByteLength(count, bits)` bytes
 * @param bits bits per element, 1 to 8
 * @param signed sign-extend each element (int4) rather than zero-extend (uint4, uint6)
 */
export function unpackBits(
  packed: Uint8Array,
  bits: number,
  count: number,
  signed: boolean,
): Int8Array | Uint8Array {
  const mask = (1 << bits) - 1;
  const out = signed ? new Int8Array(count) : new Uint8Array(count);
  const signBit = 1 << (bits - 1);
  for (let i = 0, bit = 0; i < count; i++, bit += bits) {
    const byte = bit >>> 3;
    // Two bytes hold any element of at most 8 bits, wherever it starts.
    const window = packed[byte]! | ((packed[byte + 1] ?? 0) << 8);
    const v = (window >>> (bit & 7)) & mask;
    out[i] = signed && v & signBit ? v - (1 << bits) : v;
  }
  return out;
}
