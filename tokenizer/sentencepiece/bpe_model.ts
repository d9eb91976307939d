/**
 * SentencePiece's BPE model (`bpe_model.cc`): split the normalized text into characters, with
 * user-defined symbols kept whole and never merged, then repeatedly merge the adjacent pair whose
 * concatenation is the highest-scoring piece, leftmost first on ties. Unused pieces that a merge
 * produced are split back into the two symbols that made them.
 *
 * @module
 */

import { mergePairs } from "../pair_merge.ts";
import { PieceType } from "./model_proto.ts";
import { SPACE_SYMBOL } from "./normalizer.ts";
import type { Segmentation, SegmentationModel } from "./segmentation.ts";
import type { Vocabulary } from "./vocabulary.ts";

// Bounds the per-word cache; beyond this the cache restarts (memory stays bounded for huge
// inputs of distinct words, and typical text re-fills it with its frequent words at once).
const MAX_CACHED_WORDS = 1 << 16;

// A ▁ right after something other than ▁: where a word starts.
const WORD_START = new RegExp(`(?<=[^${SPACE_SYMBOL}])(?=${SPACE_SYMBOL})`, "u");

/** Segments normalized text by BPE merges over the vocabulary's scores. */
export class BpeModel implements SegmentationModel {
  readonly #vocab: Vocabulary;
  // Word-by-word segmentation with a cache is exact only when no piece can span a word start,
  // i.e. no piece has a ▁ after another character, and no unused piece needs the whole-text
  // resegmentation map. Vocabularies trained with split_by_whitespace (the default) qualify;
  // others take the exact whole-text path, only slower.
  readonly #cache: Map<string, Segmentation> | undefined;

  /** @param vocab the model's vocabulary */
  constructor(vocab: Vocabulary) {
    this.#vocab = vocab;
    let wordwise = true;
    for (const [piece, id] of vocab.segmentable()) {
      if (WORD_START.test(piece) || vocab.type(id) === PieceType.unused) wordwise = false;
    }
    this.#cache = wordwise ? new Map() : undefined;
  }

  /** Appends the segmentation of `normalized` to `out`. */
  segment(normalized: string, out: Segmentation): void {
    const cache = this.#cache;
    if (cache === undefined) {
      this.#segmentWord(normalized, out);
      return;
    }
    for (const word of normalized.split(WORD_START)) {
      let segmentation = cache.get(word);
      if (segmentation === undefined) {
        segmentation = { pieces: [], ids: [] };
        this.#segmentWord(word, segmentation);
        if (cache.size >= MAX_CACHED_WORDS) cache.clear();
        cache.set(word, segmentation);
      }
      for (let i = 0; i < segmentation.ids.length; i++) {
        out.pieces.push(segmentation.pieces[i]!);
        out.ids.push(segmentation.ids[i]!);
      }
    }
  }

  #segmentWord(text: string, out: Segmentation): void {
    const vocab = this.#vocab;
    const symbols: string[] = [];
    const frozen: boolean[] = [];
    for (let pos = 0; pos < text.length;) {
      const userLength = vocab.userDefined?.longestPrefix(text, pos) ?? 0;
      const length = userLength > 0 ? userLength : text.codePointAt(pos)! > 0xffff ? 2 : 1;
      symbols.push(text.slice(pos, pos + length));
      frozen.push(userLength > 0);
      pos += length;
    }
    // sentencepiece keeps, for each unused piece, the split of the last pair that proposed it.
    const unusedSplits = new Map<string, [string, string]>();
    const merged = mergePairs(symbols, (left, right) => {
      const piece = left + right;
      const id = vocab.segmentableId(piece);
      if (id === undefined) return undefined;
      if (vocab.type(id) === PieceType.unused) unusedSplits.set(piece, [left, right]);
      return -vocab.score(id);
    }, frozen);
    const emit = (piece: string): void => {
      const id = vocab.pieceToId(piece);
      const split = vocab.type(id) === PieceType.unused ? unusedSplits.get(piece) : undefined;
      if (split === undefined) {
        out.pieces.push(piece);
        out.ids.push(id);
      } else {
        emit(split[0]);
        emit(split[1]);
      }
    };
    for (const piece of merged) emit(piece);
  }
}
