/**
 * SentencePiece's unigram model (`unigram_model.cc`, the optimized Viterbi encoder): the best
 * segmentation maximizes the sum of piece scores; a character no piece covers becomes `<unk>`
 * scored 10 below the lowest piece; user-defined symbols score `length * max_score - 0.1` so they
 * always win. Path scores are stored as float32 and compared in the precision sentencepiece's C++
 * types give them, so near-ties break the same way.
 *
 * @module
 */

import { PieceType } from "./model_proto.ts";
import { PieceTrie } from "./piece_trie.ts";
import type { Segmentation, SegmentationModel } from "./segmentation.ts";
import type { Vocabulary } from "./vocabulary.ts";

const UNK_PENALTY = 10;
// sentencepiece starts its min/max search from FLT_MAX and FLT_MIN (the smallest normal float,
// not the most negative): with all-negative log-probability scores, max_score stays FLT_MIN.
const FLT_MAX = 3.4028234663852886e38;
const FLT_MIN = 1.1754943508222875e-38;

const { fround } = Math;

/** Segments normalized text by Viterbi over piece scores. */
export class UnigramModel implements SegmentationModel {
  readonly #vocab: Vocabulary;
  readonly #trie: PieceTrie;
  readonly #maxScore: number;
  readonly #unkScore: number;
  // UTF-8 length of each user-defined piece, which its score depends on.
  readonly #utf8Length = new Map<number, number>();

  /** @param vocab the model's vocabulary */
  constructor(vocab: Vocabulary) {
    this.#vocab = vocab;
    this.#trie = new PieceTrie(vocab.segmentable());
    let min = FLT_MAX, max = FLT_MIN;
    const encoder = new TextEncoder();
    for (const [id, { piece, type, score }] of vocab.pieces.entries()) {
      if (type === PieceType.normal) {
        min = Math.min(min, score);
        max = Math.max(max, score);
      } else if (type === PieceType.userDefined) {
        this.#utf8Length.set(id, encoder.encode(piece).length);
      }
    }
    this.#maxScore = max;
    this.#unkScore = fround(min - UNK_PENALTY);
  }

  /** Appends the segmentation of `normalized` to `out`. */
  segment(normalized: string, out: Segmentation): void {
    const vocab = this.#vocab;
    const size = normalized.length;
    if (size === 0) return;
    // For each end position: the best path's score, where its last piece starts, and its id.
    const score = new Float64Array(size + 1);
    const startsAt = new Int32Array(size + 1).fill(-1);
    const pieceId = new Int32Array(size + 1).fill(-1);
    const offer = (end: number, start: number, candidate: number, id: number) => {
      if (startsAt[end] === -1 || candidate > score[end]!) {
        score[end] = fround(candidate);
        startsAt[end] = start;
        pieceId[end] = id;
      }
    };
    for (let start = 0; start < size;) {
      const before = score[start]!;
      const width = normalized.codePointAt(start)! > 0xffff ? 2 : 1;
      let hasSingle = false;
      this.#trie.forEachPrefix(normalized, start, (end, id) => {
        const type = vocab.type(id);
        if (type === PieceType.unused) return;
        // sentencepiece's `cond ? size_t * float - 0.1 : float` is a double, so this candidate
        // is compared in double precision and only rounded when stored (the unknown one below
        // is float + float).
        const candidate = type === PieceType.userDefined
          ? fround(this.#utf8Length.get(id)! * this.#maxScore) - 0.1 + before
          : vocab.score(id) + before;
        offer(end, start, candidate, id);
        if (end - start === width) hasSingle = true;
      });
      if (!hasSingle) offer(start + width, start, fround(this.#unkScore + before), vocab.unkId);
      start += width;
    }
    const ends: number[] = [];
    for (let end = size; end > 0; end = startsAt[end]!) ends.push(end);
    for (let i = ends.length - 1; i >= 0; i--) {
      const end = ends[i]!;
      out.pieces.push(normalized.slice(startsAt[end]!, end));
      out.ids.push(pieceId[end]!);
    }
  }
}
