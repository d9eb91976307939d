/**
 * Reads a SentencePiece `tokenizer.model`: a `ModelProto` protobuf (field numbers from
 * sentencepiece's `sentencepiece_model.proto`), decoded with a {@link BoundedReader} and no
 * generated code. Only the fields encoding and decoding use are kept; every other field is
 * skipped. Every length is checked against the end of its enclosing message before use, so a
 * truncated or corrupt file gives a {@link TokenizerFormatError} naming the field and byte offset,
 * never an out-of-bounds read.
 *
 * @module
 */

import { BoundedReader, type Field } from "../../protobuf/bounded_reader.ts";
import { TokenizerFormatError } from "../errors.ts";

// A piece may be U+FEFF itself: it is text, not a byte-order mark to drop.
const UTF8 = new TextDecoder("utf-8", { ignoreBOM: true });

/** `ModelProto.SentencePiece.Type`: what a vocabulary entry is. */
export const PieceType = {
  normal: 1,
  unknown: 2,
  control: 3,
  userDefined: 4,
  unused: 5,
  byte: 6,
} as const;

/** One of the {@link PieceType} values. */
export type PieceType = typeof PieceType[keyof typeof PieceType];

/** `TrainerSpec.ModelType`. */
export const ModelType = { unigram: 1, bpe: 2, word: 3, char: 4 } as const;

/** One vocabulary entry; its id is its index in {@link ModelProto.pieces}. */
export interface Piece {
  readonly piece: string;
  readonly score: number;
  readonly type: PieceType;
  /** Byte offset of the entry in the file, for error messages. */
  readonly offset: number;
}

/** The `TrainerSpec` fields that matter after training. */
export interface TrainerSpec {
  /** A {@link ModelType} value. */
  readonly modelType: number;
  readonly byteFallback: boolean;
  readonly treatWhitespaceAsSuffix: boolean;
  readonly unkPiece: string;
  readonly bosPiece: string;
  readonly eosPiece: string;
  /** What `<unk>` decodes to; the proto default is ` ⁇ `. */
  readonly unkSurface: string;
}

/** `NormalizerSpec`. */
export interface NormalizerSpec {
  readonly name: string;
  /** Offset of `precompiled_charsmap` in the file, for error messages. */
  readonly charsmapOffset: number;
  /** The compiled normalization rules; empty for `identity`. */
  readonly precompiledCharsmap: Uint8Array;
  readonly addDummyPrefix: boolean;
  readonly removeExtraWhitespaces: boolean;
  readonly escapeWhitespaces: boolean;
}

/** The parts of a `ModelProto` that tokenizing needs. */
export interface ModelProto {
  readonly pieces: readonly Piece[];
  readonly trainerSpec: TrainerSpec;
  readonly normalizerSpec: NormalizerSpec;
  /** Present only when the file has a `denormalizer_spec`. */
  readonly denormalizerSpec: NormalizerSpec | undefined;
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** A string field. Invalid UTF-8 becomes U+FFFD: proto2, which sentencepiece uses, allows it. */
function string(cursor: BoundedReader, field: Field): string {
  return UTF8.decode(cursor.bytes(field));
}

function readPiece(cursor: BoundedReader, end: number, offset: number): Piece {
  let piece = "", score = 0, type: number = PieceType.normal;
  cursor.fields(end, "SentencePiece", (field) => {
    if (field.no === 1) piece = string(cursor, field);
    else if (field.no === 2) score = cursor.float(field);
    else if (field.no === 3) type = cursor.int32(field);
    else cursor.skip(field);
  });
  if (!Object.values(PieceType).includes(type as PieceType)) {
    cursor.fail(offset, `invalid piece at offset ${offset}: unknown type ${type}`);
  }
  return { piece, score, type: type as PieceType, offset };
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };
type MutableTrainerSpec = Mutable<TrainerSpec>;

// Repeated occurrences of a message field merge, as protobuf specifies, hence the `into`.
function readTrainerSpec(cursor: BoundedReader, end: number, into: MutableTrainerSpec): void {
  cursor.fields(end, "TrainerSpec", (field) => {
    switch (field.no) {
      case 3:
        into.modelType = cursor.int32(field);
        break;
      case 24:
        into.treatWhitespaceAsSuffix = cursor.bool(field);
        break;
      case 35:
        into.byteFallback = cursor.bool(field);
        break;
      case 44:
        into.unkSurface = string(cursor, field);
        break;
      // sentencepiece falls back to the default piece when the stored one is empty.
      case 45:
        into.unkPiece = string(cursor, field) || "<unk>";
        break;
      case 46:
        into.bosPiece = string(cursor, field) || "<s>";
        break;
      case 47:
        into.eosPiece = string(cursor, field) || "</s>";
        break;
      default:
        cursor.skip(field);
    }
  });
}

type MutableNormalizerSpec = Mutable<NormalizerSpec>;

function readNormalizerSpec(cursor: BoundedReader, end: number, into: MutableNormalizerSpec): void {
  cursor.fields(end, "NormalizerSpec", (field) => {
    switch (field.no) {
      case 1:
        into.name = string(cursor, field);
        break;
      case 2:
        into.charsmapOffset = field.offset;
        // A copy, so the spec does not keep the whole file alive.
        into.precompiledCharsmap = cursor.bytes(field).slice();
        break;
      case 3:
        into.addDummyPrefix = cursor.bool(field);
        break;
      case 4:
        into.removeExtraWhitespaces = cursor.bool(field);
        break;
      case 5:
        into.escapeWhitespaces = cursor.bool(field);
        break;
      default:
        cursor.skip(field);
    }
  });
}

function defaultNormalizerSpec(): MutableNormalizerSpec {
  return {
    name: "",
    charsmapOffset: 0,
    precompiledCharsmap: new Uint8Array(0),
    addDummyPrefix: true,
    removeExtraWhitespaces: true,
    escapeWhitespaces: true,
  };
}

/**
 * Parses a SentencePiece model file. Checks the protobuf structure only; what the pieces mean
 * (one `<unk>`, no duplicates, 256 byte pieces) is checked by the tokenizer built from it.
 *
 * @param bytes the whole file
 * @param path the file name, for error messages
 * @throws {TokenizerFormatError} when the bytes are not a well-formed `ModelProto`
 */
export function parseModelProto(bytes: Uint8Array, path: string): ModelProto {
  const cursor: BoundedReader = new BoundedReader(
    bytes,
    (offset, detail, cause) => {
      // TokenizerFormatError takes no cause, so the codec's reason joins the message.
      const reason = cause === undefined ? "" : `: ${message(cause)}`;
      throw new TokenizerFormatError(path, offset, detail + reason);
    },
  );
  const pieces: Piece[] = [];
  const trainerSpec: MutableTrainerSpec = {
    modelType: ModelType.unigram,
    byteFallback: false,
    treatWhitespaceAsSuffix: false,
    unkPiece: "<unk>",
    bosPiece: "<s>",
    eosPiece: "</s>",
    unkSurface: " \u2047 ",
  };
  const normalizerSpec = defaultNormalizerSpec();
  let denormalizerSpec: MutableNormalizerSpec | undefined;
  cursor.fields(bytes.length, "ModelProto", (field) => {
    switch (field.no) {
      case 1:
        pieces.push(cursor.message(field, "pieces", (e) => readPiece(cursor, e, field.offset)));
        break;
      case 2:
        cursor.message(field, "trainer_spec", (e) => readTrainerSpec(cursor, e, trainerSpec));
        break;
      case 3:
        cursor.message(
          field,
          "normalizer_spec",
          (e) => readNormalizerSpec(cursor, e, normalizerSpec),
        );
        break;
      case 5: {
        const spec = denormalizerSpec ??= defaultNormalizerSpec();
        cursor.message(field, "denormalizer_spec", (e) => readNormalizerSpec(cursor, e, spec));
        break;
      }
      default:
        cursor.skip(field);
    }
  });
  return { pieces, trainerSpec, normalizerSpec, denormalizerSpec };
}
