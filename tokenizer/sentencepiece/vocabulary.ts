/**
 * A SentencePiece model's vocabulary, checked as sentencepiece's `ModelInterface` checks it: no
 * empty or duplicate pieces, exactly one unknown piece, and with byte fallback all 256 byte
 * pieces `<0x00>`..`<0xFF>`.
 *
 * @module
 */

import { TokenizerFormatError } from "../errors.ts";
import { type ModelProto, type Piece, PieceType } from "./model_proto.ts";
import { PieceTrie } from "./piece_trie.ts";

const BYTE_PIECE = /^<0x([0-9A-F]{2})>$/;

/** Pieces by id and by text, with the ids the encoder and decoder need. */
export class Vocabulary {
  /** Every piece; the id is the index. */
  readonly pieces: readonly Piece[];
  /** The id of the one UNKNOWN piece. */
  readonly unkId: number;
  /** Whether unknown characters are spelled as byte pieces rather than `<unk>`. */
  readonly byteFallback: boolean;
  /** User-defined symbols, or undefined when there are none. */
  readonly userDefined: PieceTrie | undefined;
  // What sentencepiece calls `pieces_` (normal, user-defined and unused pieces: what text can be
  // segmented into) and `reserved_id_map_` (control, unknown and byte pieces).
  readonly #segmentable = new Map<string, number>();
  readonly #reserved = new Map<string, number>();
  // byteIds[b] is the id of piece <0xBB>; empty without byte fallback.
  readonly #byteIds: Int32Array;
  // byteOf[id] is the byte of a byte piece, or -1.
  readonly #byteOf: Int16Array;

  /**
   * @param proto the parsed model file
   * @param path the model file, for error messages
   * @throws {TokenizerFormatError} when the pieces break sentencepiece's rules
   */
  constructor(proto: ModelProto, path: string) {
    const fail = (offset: number, detail: string): never => {
      throw new TokenizerFormatError(path, offset, detail);
    };
    this.pieces = proto.pieces;
    this.byteFallback = proto.trainerSpec.byteFallback;
    this.#byteIds = new Int32Array(this.byteFallback ? 256 : 0).fill(-1);
    this.#byteOf = new Int16Array(proto.pieces.length).fill(-1);
    let unkId = -1;
    const userDefined: [string, number][] = [];
    proto.pieces.forEach(({ piece, type, offset }, id) => {
      const where = `at offset ${offset} (id ${id})`;
      if (piece === "") fail(offset, `invalid piece at offset ${offset} (id ${id}): it is empty`);
      const segmentable = type === PieceType.normal || type === PieceType.userDefined ||
        type === PieceType.unused;
      const map = segmentable ? this.#segmentable : this.#reserved;
      const first = map.get(piece);
      if (first !== undefined) fail(offset, `duplicate piece ${where}: id ${first} is the same`);
      map.set(piece, id);
      if (type === PieceType.userDefined) userDefined.push([piece, id]);
      if (type === PieceType.unknown) {
        if (unkId >= 0) fail(offset, `second unknown piece ${where}: id ${unkId} is one already`);
        unkId = id;
      }
      if (type === PieceType.byte) {
        if (!this.byteFallback) {
          fail(offset, `byte piece ${where} in a model trained without byte_fallback`);
        }
        const hex = BYTE_PIECE.exec(piece)?.[1];
        if (hex === undefined) fail(offset, `invalid byte piece ${where}: expected <0x00>..<0xFF>`);
        const byte = parseInt(hex!, 16);
        this.#byteIds[byte] = id;
        this.#byteOf[id] = byte;
      }
    });
    if (unkId < 0) fail(0, "the model has no unknown piece (type UNKNOWN); it is corrupt");
    const missing = this.#byteIds.indexOf(-1);
    if (missing >= 0) {
      const hex = missing.toString(16).toUpperCase().padStart(2, "0");
      fail(0, `byte_fallback is on but the byte piece <0x${hex}> is missing`);
    }
    this.unkId = unkId;
    this.userDefined = userDefined.length > 0 ? new PieceTrie(userDefined) : undefined;
  }

  /** Number of pieces. */
  get size(): number {
    return this.pieces.length;
  }

  /** The id of `piece` among the pieces text can be segmented into, or undefined. */
  segmentableId(piece: string): number | undefined {
    return this.#segmentable.get(piece);
  }

  /** The entries text can be segmented into, as (piece, id). */
  segmentable(): IterableIterator<[string, number]> {
    return this.#segmentable.entries();
  }

  /** sentencepiece's `PieceToId`: reserved pieces first, then the others, else the unknown id. */
  pieceToId(piece: string): number {
    return this.#reserved.get(piece) ?? this.#segmentable.get(piece) ?? this.unkId;
  }

  /** The type of piece `id`, which must be in range. */
  type(id: number): PieceType {
    return this.pieces[id]!.type;
  }

  /** The score of piece `id`, which must be in range. */
  score(id: number): number {
    return this.pieces[id]!.score;
  }

  /** The id of byte piece `byte` (byte fallback models only). */
  byteId(byte: number): number {
    return this.#byteIds[byte]!;
  }

  /** The byte a byte piece stands for, or -1 for other pieces. */
  byteOf(id: number): number {
    return this.#byteOf[id]!;
  }
}
