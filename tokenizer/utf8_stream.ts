/**
 * Incremental UTF-8 decoding for detokenizers: bytes arrive a token at a time, characters may be
 * split across tokens, and malformed bytes must be replaced exactly as the reference tokenizer
 * replaces them.
 *
 * @module
 */

/**
 * How malformed bytes become U+FFFD.
 *
 * - `maximal-subpart`: one U+FFFD per maximal ill-formed subpart (the Unicode recommendation,
 *   followed by WHATWG `TextDecoder` and Python's `errors="replace"`, hence by tiktoken users).
 * - `per-byte`: one U+FFFD per byte that cannot start a well-formed character, as SentencePiece's
 *   decoder does (`E3 81 41` gives two replacements, then `A`).
 */
export type Utf8ErrorMode = "maximal-subpart" | "per-byte";

const REPLACEMENT = "\uFFFD";

/** Bytes in a sequence led by `lead`, or 0 when `lead` cannot start one. */
function sequenceLength(lead: number): number {
  if (lead >= 0xc2 && lead <= 0xdf) return 2;
  if (lead >= 0xe0 && lead <= 0xef) return 3;
  if (lead >= 0xf0 && lead <= 0xf4) return 4;
  return 0;
}

/**
 * Whether `byte` may follow `lead` at position `index` (1-based after the lead) of a well-formed
 * sequence. The narrowed second-byte ranges exclude overlong forms, surrogates and code points
 * above U+10FFFF, so a complete sequence that passes is always a valid scalar value.
 */
function continues(lead: number, index: number, byte: number): boolean {
  if (index === 1) {
    if (lead === 0xe0) return byte >= 0xa0 && byte <= 0xbf;
    if (lead === 0xed) return byte >= 0x80 && byte <= 0x9f;
    if (lead === 0xf0) return byte >= 0x90 && byte <= 0xbf;
    if (lead === 0xf4) return byte >= 0x80 && byte <= 0x8f;
  }
  return byte >= 0x80 && byte <= 0xbf;
}

/** A UTF-8 decoder fed in chunks that never returns part of a character. */
export class Utf8Stream {
  readonly #mode: Utf8ErrorMode;
  // A U+FEFF in the text is a character, not a byte-order mark to drop.
  readonly #decoder = new TextDecoder("utf-8", { ignoreBOM: true });
  // The bytes of an incomplete but so far well-formed sequence: at most 3.
  #pending: Uint8Array = new Uint8Array(0);

  /** @param mode how malformed bytes are replaced */
  constructor(mode: Utf8ErrorMode) {
    this.#mode = mode;
  }

  /** Whether bytes are held back waiting for the rest of a character. */
  get hasPending(): boolean {
    return this.#pending.length > 0;
  }

  /** Decodes `bytes` after any held-back ones, holding back a trailing incomplete character. */
  push(bytes: Uint8Array): string {
    return this.#decode(bytes, false);
  }

  /** Decodes whatever is held back as malformed and resets the stream. */
  end(): string {
    return this.#decode(new Uint8Array(0), true);
  }

  #decode(bytes: Uint8Array, final: boolean): string {
    let buffer = bytes;
    if (this.#pending.length > 0) {
      buffer = new Uint8Array(this.#pending.length + bytes.length);
      buffer.set(this.#pending);
      buffer.set(bytes, this.#pending.length);
      this.#pending = new Uint8Array(0);
    }
    let text = "";
    // Well-formed runs go to TextDecoder in one call; only malformed spots are handled here.
    let runStart = 0;
    let i = 0;
    while (i < buffer.length) {
      const lead = buffer[i]!;
      if (lead < 0x80) {
        i++;
        continue;
      }
      const length = sequenceLength(lead);
      let matched = length === 0 ? 0 : 1;
      while (matched < length && i + matched < buffer.length) {
        if (!continues(lead, matched, buffer[i + matched]!)) break;
        matched++;
      }
      if (length > 0 && matched === length) {
        i += length;
        continue;
      }
      text += this.#decoder.decode(buffer.subarray(runStart, i));
      if (!final && matched > 0 && i + matched === buffer.length) {
        this.#pending = buffer.slice(i);
        return text;
      }
      text += REPLACEMENT;
      i += this.#mode === "per-byte" ? 1 : Math.max(matched, 1);
      runStart = i;
    }
    return text + this.#decoder.decode(buffer.subarray(runStart));
  }
}
