/**
 * Test helper: writes small SentencePiece `ModelProto` files with `@bufbuild/protobuf`'s wire
 * writer, so that tests can state exactly which rule a malformed model breaks.
 *
 * @module
 */

import { BinaryWriter, WireType } from "../../protobuf/wire.ts";
import { ModelType, PieceType } from "./model_proto.ts";

/** One piece to write; type defaults to NORMAL and score to 0. */
export interface PieceSpec {
  readonly piece: string;
  readonly score?: number;
  readonly type?: number;
}

/** What to write; omitted trainer and normalizer fields keep the proto defaults. */
export interface ModelSpec {
  readonly pieces: readonly PieceSpec[];
  readonly modelType?: number;
  readonly byteFallback?: boolean;
  readonly addDummyPrefix?: boolean;
  readonly precompiledCharsmap?: Uint8Array;
  readonly denormalizerCharsmap?: Uint8Array;
}

/** The pieces every valid model starts with: <unk>, <s>, </s>. */
export const BASE_PIECES: readonly PieceSpec[] = [
  { piece: "<unk>", type: PieceType.unknown },
  { piece: "<s>", type: PieceType.control },
  { piece: "</s>", type: PieceType.control },
];

/** The 256 byte pieces a byte-fallback model needs. */
export const BYTE_PIECES: readonly PieceSpec[] = Array.from({ length: 256 }, (_, b) => ({
  piece: `<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`,
  type: PieceType.byte,
}));

/** Serializes `spec` as a `ModelProto`. */
export function buildModel(spec: ModelSpec): Uint8Array {
  const writer = new BinaryWriter();
  for (const { piece, score = 0, type = PieceType.normal } of spec.pieces) {
    writer.tag(1, WireType.LengthDelimited).fork()
      .tag(1, WireType.LengthDelimited).string(piece)
      .tag(2, WireType.Bit32).float(score)
      .tag(3, WireType.Varint).int32(type)
      .join();
  }
  writer.tag(2, WireType.LengthDelimited).fork()
    .tag(3, WireType.Varint).int32(spec.modelType ?? ModelType.bpe)
    .tag(35, WireType.Varint).bool(spec.byteFallback ?? false)
    .join();
  writer.tag(3, WireType.LengthDelimited).fork()
    .tag(1, WireType.LengthDelimited).string("identity")
    .tag(3, WireType.Varint).bool(spec.addDummyPrefix ?? true);
  if (spec.precompiledCharsmap !== undefined) {
    writer.tag(2, WireType.LengthDelimited).bytes(spec.precompiledCharsmap);
  }
  writer.join();
  if (spec.denormalizerCharsmap !== undefined) {
    writer.tag(5, WireType.LengthDelimited).fork()
      .tag(2, WireType.LengthDelimited).bytes(spec.denormalizerCharsmap)
      .join();
  }
  return writer.finish();
}
