/**
 * Reads a SentencePiece `tokenizer.model`: a `ModelProto` protobuf (field numbers from
 * sentencepiece's `sentencepiece_model.proto`), decoded with the wire-level reader of
 * `@bufbuild/protobuf` and no generated code. Only the fields encoding and decoding use are kept;
 * every other field is skipped. Every length is checked against the end of its enclosing message
 * before use, so a truncated or corrupt file gives a {@link TokenizerFormatError} naming the field
 * and byte offset, never an out-of-bounds read.
 *
 * @module
 */

import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
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

const WIRE_NAMES: Record<number, string> = {
  [WireType.Varint]: "varint",
  [WireType.Bit64]: "64-bit",
  [WireType.LengthDelimited]: "length-delimited",
  [WireType.StartGroup]: "start-group",
  [WireType.EndGroup]: "end-group",
  [WireType.Bit32]: "32-bit",
};

interface Field {
  readonly number: number;
  readonly wireType: WireType;
  /** Offset of the field's tag. */
  readonly offset: number;
}

/**
 * A reader over the whole file. Each read is given the end of its enclosing message and checks
 * that it stays inside it.
 */
class ProtoCursor {
  readonly #bytes: Uint8Array;
  readonly #reader: BinaryReader;
  readonly #path: string;

  constructor(bytes: Uint8Array, path: string) {
    this.#bytes = bytes;
    this.#reader = new BinaryReader(bytes);
    this.#path = path;
  }

  fail(offset: number, detail: string): never {
    throw new TokenizerFormatError(this.#path, offset, detail);
  }

  /** Yields the fields of the message that ends at `end`; the caller must consume each value. */
  *fields(end: number): Generator<Field> {
    const reader = this.#reader;
    while (reader.pos < end) {
      const offset = reader.pos;
      let number: number, wireType: WireType;
      try {
        [number, wireType] = reader.tag();
      } catch (error) {
        this.fail(offset, `invalid protobuf: bad field tag at offset ${offset}: ${message(error)}`);
      }
      this.#checkEnd(offset, end, `the tag of field ${number}`);
      yield { number, wireType, offset };
      if (reader.pos > end) this.#truncated({ number, wireType, offset }, end);
    }
  }

  /** Reads a length-delimited value and returns its [start, end) range in the file. */
  span(field: Field, end: number): [number, number] {
    this.#expect(field, WireType.LengthDelimited);
    const length = this.#read(field, end, () => this.#reader.uint32());
    const start = this.#reader.pos;
    if (length > end - start) this.#truncated(field, end, length);
    this.#reader.pos = start + length;
    return [start, start + length];
  }

  /** Reads an embedded message in place: `read` gets the message's end offset. */
  message<T>(field: Field, end: number, read: (end: number) => T): T {
    const [start, stop] = this.span(field, end);
    this.#reader.pos = start;
    const value = read(stop);
    this.#reader.pos = stop;
    return value;
  }

  string(field: Field, end: number): string {
    const [start, stop] = this.span(field, end);
    return UTF8.decode(this.#bytes.subarray(start, stop));
  }

  bytes(field: Field, end: number): Uint8Array {
    const [start, stop] = this.span(field, end);
    return this.#bytes.slice(start, stop);
  }

  float(field: Field, end: number): number {
    this.#expect(field, WireType.Bit32);
    return this.#read(field, end, () => this.#reader.float());
  }

  int32(field: Field, end: number): number {
    this.#expect(field, WireType.Varint);
    return this.#read(field, end, () => this.#reader.int32());
  }

  bool(field: Field, end: number): boolean {
    this.#expect(field, WireType.Varint);
    return this.#read(field, end, () => this.#reader.bool());
  }

  skip(field: Field, end: number): void {
    this.#read(field, end, () => this.#reader.skip(field.wireType, field.number));
  }

  #read<T>(field: Field, end: number, read: () => T): T {
    let value: T;
    try {
      value = read();
    } catch (error) {
      if (error instanceof RangeError) this.#truncated(field, end);
      this.fail(
        field.offset,
        `invalid protobuf: field ${field.number} at offset ${field.offset}: ${message(error)}`,
      );
    }
    if (this.#reader.pos > end) this.#truncated(field, end);
    return value;
  }

  #expect(field: Field, wireType: WireType): void {
    if (field.wireType !== wireType) {
      this.fail(
        field.offset,
        `invalid protobuf: field ${field.number} at offset ${field.offset} has wire type ` +
          `${WIRE_NAMES[field.wireType]}, expected ${WIRE_NAMES[wireType]}; the file is not a ` +
          "SentencePiece model or is corrupt",
      );
    }
  }

  #checkEnd(offset: number, end: number, what: string): void {
    if (this.#reader.pos > end) {
      this.fail(offset, `truncated protobuf: ${what} at offset ${offset} ${this.#past(end)}`);
    }
  }

  #truncated(field: Field, end: number, length?: number): never {
    const size = length === undefined ? "" : ` (length ${length})`;
    this.fail(
      field.offset,
      `truncated protobuf: field ${field.number} at offset ${field.offset}${size} ` +
        this.#past(end),
    );
  }

  #past(end: number): string {
    return end === this.#bytes.length
      ? `runs past the end of the file (size ${end})`
      : `runs past the end of its enclosing message (at offset ${end})`;
  }
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function readPiece(cursor: ProtoCursor, end: number, offset: number): Piece {
  let piece = "", score = 0, type: number = PieceType.normal;
  for (const field of cursor.fields(end)) {
    if (field.number === 1) piece = cursor.string(field, end);
    else if (field.number === 2) score = cursor.float(field, end);
    else if (field.number === 3) type = cursor.int32(field, end);
    else cursor.skip(field, end);
  }
  if (!Object.values(PieceType).includes(type as PieceType)) {
    cursor.fail(offset, `invalid piece "${piece}" at offset ${offset}: unknown type ${type}`);
  }
  return { piece, score, type: type as PieceType, offset };
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };
type MutableTrainerSpec = Mutable<TrainerSpec>;

// Repeated occurrences of a message field merge, as protobuf specifies, hence the `into`.
function readTrainerSpec(cursor: ProtoCursor, end: number, into: MutableTrainerSpec): void {
  for (const field of cursor.fields(end)) {
    switch (field.number) {
      case 3:
        into.modelType = cursor.int32(field, end);
        break;
      case 24:
        into.treatWhitespaceAsSuffix = cursor.bool(field, end);
        break;
      case 35:
        into.byteFallback = cursor.bool(field, end);
        break;
      case 44:
        into.unkSurface = cursor.string(field, end);
        break;
      // sentencepiece falls back to the default piece when the stored one is empty.
      case 45:
        into.unkPiece = cursor.string(field, end) || "<unk>";
        break;
      case 46:
        into.bosPiece = cursor.string(field, end) || "<s>";
        break;
      case 47:
        into.eosPiece = cursor.string(field, end) || "</s>";
        break;
      default:
        cursor.skip(field, end);
    }
  }
}

type MutableNormalizerSpec = Mutable<NormalizerSpec>;

function readNormalizerSpec(cursor: ProtoCursor, end: number, into: MutableNormalizerSpec): void {
  for (const field of cursor.fields(end)) {
    switch (field.number) {
      case 1:
        into.name = cursor.string(field, end);
        break;
      case 2:
        into.charsmapOffset = field.offset;
        into.precompiledCharsmap = cursor.bytes(field, end);
        break;
      case 3:
        into.addDummyPrefix = cursor.bool(field, end);
        break;
      case 4:
        into.removeExtraWhitespaces = cursor.bool(field, end);
        break;
      case 5:
        into.escapeWhitespaces = cursor.bool(field, end);
        break;
      default:
        cursor.skip(field, end);
    }
  }
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
  const cursor = new ProtoCursor(bytes, path);
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
  const end = bytes.length;
  for (const field of cursor.fields(end)) {
    switch (field.number) {
      case 1:
        pieces.push(cursor.message(field, end, (e) => readPiece(cursor, e, field.offset)));
        break;
      case 2:
        cursor.message(field, end, (e) => readTrainerSpec(cursor, e, trainerSpec));
        break;
      case 3:
        cursor.message(field, end, (e) => readNormalizerSpec(cursor, e, normalizerSpec));
        break;
      case 5: {
        const spec = denormalizerSpec ??= defaultNormalizerSpec();
        cursor.message(field, end, (e) => readNormalizerSpec(cursor, e, spec));
        break;
      }
      default:
        cursor.skip(field, end);
    }
  }
  return { pieces, trainerSpec, normalizerSpec, denormalizerSpec };
}
