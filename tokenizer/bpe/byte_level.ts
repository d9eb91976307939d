/**
 * GPT-2's byte-level alphabet, which byte-level BPE vocabularies are written in: every byte maps
 * to one printable character (printable Latin-1 bytes to themselves, the others to U+0100 and
 * up, in byte order), so that any UTF-8 text becomes a string of vocabulary symbols.
 *
 * @module
 */

import { compileOniguruma } from "./oniguruma.ts";

/** The character standing for each byte. */
export const BYTE_TO_CHAR: readonly string[] = (() => {
  const printable = (b: number) =>
    (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const chars: string[] = [];
  let next = 0x100;
  for (let b = 0; b < 256; b++) chars.push(String.fromCharCode(printable(b) ? b : next++));
  return chars;
})();

/** The byte each alphabet character stands for. */
export const CHAR_TO_BYTE: ReadonlyMap<string, number> = new Map(
  BYTE_TO_CHAR.map((char, byte) => [char, byte]),
);

/** GPT-2's split pattern, which the ByteLevel pre-tokenizer applies when `use_regex` is set. */
export const GPT2_PATTERN: RegExp = compileOniguruma(
  String.raw`'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`,
);

const encoder = new TextEncoder();

/** The text's UTF-8 bytes written in the byte-level alphabet. */
export function toByteLevel(text: string): string {
  let out = "";
  for (const byte of encoder.encode(text)) out += BYTE_TO_CHAR[byte];
  return out;
}

/** The bytes a byte-level symbol stands for, or undefined if a character is not in the alphabet. */
export function fromByteLevel(symbol: string): Uint8Array | undefined {
  const bytes = new Uint8Array(symbol.length);
  let length = 0;
  for (const char of symbol) {
    const byte = CHAR_TO_BYTE.get(char);
    if (byte === undefined) return undefined;
    bytes[length++] = byte;
  }
  return bytes.subarray(0, length);
}
