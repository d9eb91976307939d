/**
 * The BPE model of Hugging Face tokenizers and of llama.cpp's vocabularies: a word starts as its
 * characters (or, for characters outside the vocabulary, their byte tokens or the unknown token),
 * then adjacent symbols merge best rank first, leftmost on ties. Byte-pair files rank merges by
 * their position in the merge list; SentencePiece-style vocabularies rank the merged piece by its
 * score. `ignore_merges` (Llama 3) takes a word found whole in the vocabulary as it is.
 *
 * @module
 */

import { mergePairs, type PairRank } from "../pair_merge.ts";

// Bounds the per-word cache, as the other tokenizers do.
const MAX_CACHED_WORDS = 1 << 16;

const SPM_SPACE = "\u2581";
const BEFORE_SPM_SPACE = /(?=\u2581)/u;

/** What a BPE model needs besides its vocabulary. */
export interface BpeOptions {
  /** Token of every vocabulary string. */
  readonly vocab: ReadonlyMap<string, number>;
  /** Rank of merging two symbols, lower first; undefined when they do not merge. */
  readonly rankOf: PairRank;
  /** Take a word that is itself a token whole, before any merge. */
  readonly ignoreMerges: boolean;
  /** Characters outside the vocabulary become their UTF-8 bytes as `<0xXX>` tokens. */
  readonly byteFallback: boolean;
  /** Token of characters outside the vocabulary (without byte fallback); they are dropped if none. */
  readonly unkId: number | undefined;
  /** Consecutive unknown characters give one unknown token. */
  readonly fuseUnk: boolean;
}

/** Encodes pre-tokenized words to ids. */
export class BpeModel {
  readonly #options: BpeOptions;
  readonly #byteIds: readonly (number | undefined)[];
  readonly #cache = new Map<string, readonly number[]>();
  /**
   * Whether a word may be cut before each U+2581 and its parts encoded apart. SentencePiece-style
   * files without a pre-tokenizer hand the model a whole line as one word; when no token has a
   * U+2581 after its start, no merge can span such a cut, so the result is the same, and the
   * parts are short and repeat, which the cache needs.
   */
  readonly #cutsAtSpaces: boolean;

  /** @param options the vocabulary, merge ranks and fallbacks */
  constructor(options: BpeOptions) {
    this.#options = options;
    this.#cutsAtSpaces = options.vocab.has(SPM_SPACE) &&
      [...options.vocab.keys()].every((token) => token.indexOf(SPM_SPACE, 1) < 0);
    this.#byteIds = Array.from(
      { length: 256 },
      (_, b) => options.vocab.get(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`),
    );
  }

  /** Appends the ids of one word to `out`. */
  encodeWord(word: string, out: number[]): void {
    if (this.#cutsAtSpaces && word.length > 1) {
      for (const part of word.split(BEFORE_SPM_SPACE)) this.#encodeCached(part, out);
    } else this.#encodeCached(word, out);
  }

  #encodeCached(word: string, out: number[]): void {
    let ids = this.#cache.get(word);
    if (ids === undefined) {
      ids = this.#encode(word);
      if (this.#cache.size >= MAX_CACHED_WORDS) this.#cache.clear();
      this.#cache.set(word, ids);
    }
    for (const id of ids) out.push(id);
  }

  #encode(word: string): number[] {
    const { vocab, rankOf, ignoreMerges } = this.#options;
    if (ignoreMerges) {
      const whole = vocab.get(word);
      if (whole !== undefined) return [whole];
    }
    // Symbols that are not vocabulary strings (byte and unknown tokens) are frozen: they carry
    // their id and never merge.
    const symbols: string[] = [];
    const fixedIds: (number | undefined)[] = [];
    let previousUnknown = false;
    for (const char of word) {
      if (vocab.has(char)) {
        symbols.push(char);
        fixedIds.push(undefined);
        previousUnknown = false;
        continue;
      }
      const bytes = this.#fallbackBytes(char);
      if (bytes !== undefined) {
        for (const id of bytes) {
          symbols.push(char);
          fixedIds.push(id);
        }
        previousUnknown = false;
      } else if (this.#options.unkId !== undefined) {
        if (!(previousUnknown && this.#options.fuseUnk)) {
          symbols.push(char);
          fixedIds.push(this.#options.unkId);
        }
        previousUnknown = true;
      }
    }
    const frozen = fixedIds.map((id) => id !== undefined);
    const merged = mergePairs(symbols, rankOf, frozen);
    if (!frozen.includes(true)) return merged.map((symbol) => vocab.get(symbol)!);
    // mergePairs keeps frozen symbols in place, so walk both lists together.
    const ids: number[] = [];
    let original = 0;
    for (const symbol of merged) {
      const fixed = fixedIds[original];
      ids.push(fixed ?? vocab.get(symbol)!);
      original += fixed === undefined ? [...symbol].length : 1;
    }
    return ids;
  }

  #fallbackBytes(char: string): number[] | undefined {
    if (!this.#options.byteFallback) return undefined;
    const ids: number[] = [];
    for (const byte of new TextEncoder().encode(char)) {
      const id = this.#byteIds[byte];
      if (id === undefined) return undefined;
      ids.push(id);
    }
    return ids;
  }
}
