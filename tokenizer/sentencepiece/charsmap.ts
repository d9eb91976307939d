/**
 * SentencePiece's precompiled normalization rules (`precompiled_charsmap`, e.g. `nmt_nfkc`): a
 * little-endian uint32 trie size, a darts-clone double-array trie over UTF-8 keys, then the
 * NUL-terminated replacement strings the trie's values point into. Normalizing a position
 * means replacing the longest key found there. Indices read from the blob are checked on every
 * step: a corrupt trie can only make rules not match, never read outside the blob.
 *
 * @module
 */

import { TokenizerFormatError } from "../errors.ts";

// A leading U+FEFF is a character of the rule, not a byte-order mark to drop.
const UTF8 = new TextDecoder("utf-8", { ignoreBOM: true });

// The fields of one double-array unit, as darts-clone packs them.
function hasLeaf(unit: number): boolean {
  return ((unit >>> 8) & 1) === 1;
}

function leafValue(unit: number): number {
  return unit & 0x7fffffff;
}

function label(unit: number): number {
  return (unit & 0x800000ff) >>> 0;
}

function childOffset(unit: number): number {
  return ((unit >>> 10) << ((unit & 0x200) >>> 6)) >>> 0;
}

/** A rule match: the code units consumed and what replaces them. */
export interface CharsmapMatch {
  readonly length: number;
  readonly replacement: string;
}

/** The normalization rules of a SentencePiece model. */
export class Charsmap {
  readonly #units: Uint32Array;
  readonly #strings: Uint8Array;
  readonly #decoded = new Map<number, string>();
  readonly #utf8 = new Uint8Array(4);

  private constructor(units: Uint32Array, strings: Uint8Array) {
    this.#units = units;
    this.#strings = strings;
  }

  /**
   * Reads a `precompiled_charsmap` blob.
   *
   * @param path the model file, for error messages
   * @param offset where the blob's field starts in the file, for error messages
   */
  static parse(blob: Uint8Array, path: string, offset: number): Charsmap {
    const view = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
    const trieBytes = blob.length >= 4 ? view.getUint32(0, true) : 0;
    if (blob.length <= 4 || trieBytes < 4 || trieBytes > blob.length - 4) {
      throw new TokenizerFormatError(
        path,
        offset,
        `invalid precompiled_charsmap at offset ${offset}: a ${blob.length}-byte blob cannot ` +
          `hold a ${trieBytes}-byte trie`,
      );
    }
    const units = new Uint32Array(trieBytes >>> 2);
    for (let i = 0; i < units.length; i++) units[i] = view.getUint32(4 + 4 * i, true);
    return new Charsmap(units, blob.subarray(4 + trieBytes));
  }

  /** The longest rule whose key is a prefix of `text` at `start` and ends on a code point. */
  match(text: string, start: number): CharsmapMatch | undefined {
    const units = this.#units;
    let node = childOffset(units[0]!);
    let found: CharsmapMatch | undefined;
    for (let i = start; i < text.length;) {
      const codePoint = text.codePointAt(i)!;
      const width = codePoint > 0xffff ? 2 : 1;
      const byteCount = encodeUtf8(codePoint, this.#utf8);
      for (let b = 0; b < byteCount; b++) {
        const byte = this.#utf8[b]!;
        node = (node ^ byte) >>> 0;
        const unit = units[node];
        if (unit === undefined || label(unit) !== byte) return found;
        node = (node ^ childOffset(unit)) >>> 0;
        if (b === byteCount - 1 && hasLeaf(unit)) {
          const leaf = units[node];
          const replacement = leaf === undefined ? undefined : this.#string(leafValue(leaf));
          if (replacement !== undefined) found = { length: i + width - start, replacement };
        }
      }
      i += width;
    }
    return found;
  }

  #string(offset: number): string | undefined {
    if (offset >= this.#strings.length) return undefined;
    let text = this.#decoded.get(offset);
    if (text === undefined) {
      let end = this.#strings.indexOf(0, offset);
      if (end < 0) end = this.#strings.length;
      text = UTF8.decode(this.#strings.subarray(offset, end));
      this.#decoded.set(offset, text);
    }
    return text;
  }
}

/** Writes the UTF-8 form of `codePoint` to `out` and returns its length. */
function encodeUtf8(codePoint: number, out: Uint8Array): number {
  if (codePoint < 0x80) {
    out[0] = codePoint;
    return 1;
  }
  if (codePoint < 0x800) {
    out[0] = 0xc0 | (codePoint >> 6);
    out[1] = 0x80 | (codePoint & 0x3f);
    return 2;
  }
  if (codePoint < 0x10000) {
    out[0] = 0xe0 | (codePoint >> 12);
    out[1] = 0x80 | ((codePoint >> 6) & 0x3f);
    out[2] = 0x80 | (codePoint & 0x3f);
    return 3;
  }
  out[0] = 0xf0 | (codePoint >> 18);
  out[1] = 0x80 | ((codePoint >> 12) & 0x3f);
  out[2] = 0x80 | ((codePoint >> 6) & 0x3f);
  out[3] = 0x80 | (codePoint & 0x3f);
  return 4;
}
