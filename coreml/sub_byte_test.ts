import { deepStrictEqual, strictEqual } from "node:assert";
import { packBits, packedByteLength, paddingBits, unpackBits } from "./sub_byte.ts";

Deno.test("packBits() packs int4 LSB-first as in the format brief", () => {
  // Format brief section 3.4 (verification log): [1, -1, 7, -8, 3] -> F1 87 03, padding 4.
  const values = Int8Array.of(1, -1, 7, -8, 3);
  deepStrictEqual([...packBits(values, 4)], [0xf1, 0x87, 0x03]);
  strictEqual(packedByteLength(values.length, 4), 3);
  strictEqual(paddingBits(values.length, 4), 4);
});

Deno.test("packBits() puts element 2k in the low nibble of byte k", () => {
  deepStrictEqual([...packBits(Uint8Array.of(0x1, 0xf, 0xa), 4)], [0xf1, 0x0a]);
  strictEqual(paddingBits(4, 4), 0);
});

Deno.test("unpackBits() inverts packBits() for int4 and uint4", () => {
  const signed = Int8Array.from({ length: 33 }, (_, i) => (i % 16) - 8);
  deepStrictEqual(unpackBits(packBits(signed, 4), 4, signed.length, true), signed);
  const unsigned = Uint8Array.from({ length: 31 }, (_, i) => (i * 7) % 16);
  deepStrictEqual(unpackBits(packBits(unsigned, 4), 4, unsigned.length, false), unsigned);
});

Deno.test("unpackBits() sign-extends int4 and zero-extends uint4", () => {
  deepStrictEqual([...unpackBits(Uint8Array.of(0x8f), 4, 2, true)], [-1, -8]);
  deepStrictEqual([...unpackBits(Uint8Array.of(0x8f), 4, 2, false)], [15, 8]);
});

Deno.test("packBits() packs uint6 as one LSB-first bit stream, elements straddling bytes", () => {
  // coremltools.optimize._utils.pack_elements_into_bits([1, 63, 42, 5, 17], 6).
  const values = Uint8Array.of(1, 63, 42, 5, 17);
  deepStrictEqual([...packBits(values, 6)], [193, 175, 22, 17]);
  strictEqual(packedByteLength(values.length, 6), 4);
  strictEqual(paddingBits(values.length, 6), 2);
  const many = Uint8Array.from({ length: 37 }, (_, i) => (i * 29) % 64);
  deepStrictEqual(unpackBits(packBits(many, 6), 6, many.length, false), many);
});
