/**
 * What a SentencePiece model produces from normalized text, before the processor turns unknown
 * pieces into bytes or merges them.
 *
 * @module
 */

/** Pieces and their ids, in order (`pieces[i]` has id `ids[i]`). */
export interface Segmentation {
  readonly pieces: string[];
  readonly ids: number[];
}

/** A SentencePiece model type (BPE or unigram): segments normalized text. */
export interface SegmentationModel {
  /** Appends the segmentation of `normalized` to `out`. */
  segment(normalized: string, out: Segmentation): void;
}
