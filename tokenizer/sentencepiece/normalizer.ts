/**
 * SentencePiece's normalizer, as in its `normalizer.cc`: replace each prefix by its rule from the
 * charsmap (or keep it, for `identity`), optionally drop leading, trailing and repeated spaces,
 * add the dummy-prefix space, and make spaces visible as U+2581 (▁).
 *
 * @module
 */

import type { Charsmap } from "./charsmap.ts";
import type { NormalizerSpec } from "./model_proto.ts";
import type { PieceTrie } from "./piece_trie.ts";

/** U+2581, SentencePiece's visible space. */
export const SPACE_SYMBOL = "\u2581";

/** Options of a {@link Normalizer} besides its spec. */
export interface NormalizerOptions {
  /** `TrainerSpec.treat_whitespace_as_suffix`: the dummy space goes at the end. */
  readonly treatWhitespaceAsSuffix: boolean;
  /** User-defined symbols, copied through unnormalized. */
  readonly userDefined: PieceTrie | undefined;
  /** The compiled rules; undefined for identity normalization. */
  readonly charsmap: Charsmap | undefined;
}

/** Turns input text into the string SentencePiece's models segment. */
export class Normalizer {
  readonly #spec: NormalizerSpec;
  readonly #options: NormalizerOptions;
  readonly #space: string;

  /** @param spec the model's normalizer spec */
  constructor(spec: NormalizerSpec, options: NormalizerOptions) {
    this.#spec = spec;
    this.#options = options;
    this.#space = spec.escapeWhitespaces ? SPACE_SYMBOL : " ";
  }

  /** Normalizes `input`. A lone surrogate becomes U+FFFD, as malformed UTF-8 does upstream. */
  normalize(input: string): string {
    const text = input.toWellFormed();
    const { removeExtraWhitespaces, addDummyPrefix, escapeWhitespaces } = this.#spec;
    const suffix = this.#options.treatWhitespaceAsSuffix;
    let pos = 0;
    while (removeExtraWhitespaces && pos < text.length) {
      const [normalized, consumed] = this.#prefix(text, pos);
      if (normalized !== " ") break;
      pos += consumed;
    }
    if (pos === text.length) return "";

    const parts: string[] = [];
    if (!suffix && addDummyPrefix) parts.push(this.#space);
    let previousIsSpace = removeExtraWhitespaces;
    while (pos < text.length) {
      const [normalized, consumed] = this.#prefix(text, pos);
      let piece = normalized;
      if (previousIsSpace) {
        let skip = 0;
        while (skip < piece.length && piece.charCodeAt(skip) === 0x20) skip++;
        piece = piece.slice(skip);
      }
      if (piece !== "") {
        parts.push(escapeWhitespaces ? piece.replaceAll(" ", SPACE_SYMBOL) : piece);
        previousIsSpace = piece.endsWith(" ");
      }
      pos += consumed;
      if (!removeExtraWhitespaces) previousIsSpace = false;
    }
    let normalized = parts.join("");
    if (removeExtraWhitespaces) {
      // As in sentencepiece, this also eats a literal ▁ from the input at the end.
      while (normalized.endsWith(this.#space)) {
        normalized = normalized.slice(0, -this.#space.length);
      }
    }
    if (suffix && addDummyPrefix) normalized += this.#space;
    return normalized;
  }

  /** The normalized form of the next unit of `text` at `pos`, and how many code units it used. */
  #prefix(text: string, pos: number): [string, number] {
    const { userDefined, charsmap } = this.#options;
    if (userDefined !== undefined) {
      const length = userDefined.longestPrefix(text, pos);
      if (length > 0) return [text.slice(pos, pos + length), length];
    }
    if (charsmap !== undefined) {
      const rule = charsmap.match(text, pos);
      if (rule !== undefined) return [rule.replacement, rule.length];
    } else if (userDefined === undefined && text.charCodeAt(pos) !== 0x20) {
      // Identity rules change nothing and only spaces are special, so a whole run of non-spaces
      // behaves exactly like its characters one at a time: take it in one step.
      let end = text.indexOf(" ", pos);
      if (end < 0) end = text.length;
      return [text.slice(pos, end), end - pos];
    }
    const width = text.codePointAt(pos)! > 0xffff ? 2 : 1;
    return [text.slice(pos, pos + width), width];
  }
}
