/**
 * The SentencePiece tokenizer of Llama 1 and 2 (and the embedded KJV model), identical to
 * sentencepiece's `SentencePieceProcessor`: normalize, segment with the BPE or unigram model, then
 * spell unknown pieces as UTF-8 byte pieces (byte fallback) or merge runs of them into one
 * `<unk>`. Decoding joins byte pieces into characters, turns ▁ back into spaces, drops control
 * pieces and the dummy-prefix space of the first piece.
 *
 * @module
 */

import { TokenizerFormatError, UnsupportedTokenizerError } from "../errors.ts";
import { decodeAll, TokenStreamDecoder, type TokenSurface } from "../streaming_decoder.ts";
import type { EncodeOptions, StreamingDecoder, Tokenizer } from "../tokenizer.ts";
import { BpeModel } from "./bpe_model.ts";
import { Charsmap } from "./charsmap.ts";
import { ModelType, parseModelProto, PieceType } from "./model_proto.ts";
import { Normalizer, SPACE_SYMBOL } from "./normalizer.ts";
import type { Segmentation, SegmentationModel } from "./segmentation.ts";
import { UnigramModel } from "./unigram_model.ts";
import { Vocabulary } from "./vocabulary.ts";

const MODEL_TYPE_NAMES: Record<number, string> = {
  [ModelType.unigram]: "UNIGRAM",
  [ModelType.bpe]: "BPE",
  [ModelType.word]: "WORD",
  [ModelType.char]: "CHAR",
};

const SINGLE_BYTES = Array.from({ length: 256 }, (_, byte) => Uint8Array.of(byte));

/** How the decoder treats the first piece's leading ▁, from the normalizer spec. */
interface LeadingSpaceRule {
  /** Strip the ▁ that the dummy prefix (or whitespace removal) put before the first piece. */
  readonly strip: boolean;
  /** With whitespace removal every leading ▁ piece is stripped, not only the first. */
  readonly removeExtraWhitespaces: boolean;
}

/** A SentencePiece `tokenizer.model` ready to encode and decode. */
export class SentencePieceTokenizer implements Tokenizer {
  /** Always `sentencepiece`. */
  readonly kind = "sentencepiece";
  /** Always: Llama 1 and 2 prompts start with BOS. */
  readonly addBos = true;
  /** Number of pieces. */
  readonly vocabSize: number;
  /** Id of the trainer spec's bos piece when it is a control piece. */
  readonly bosId: number | undefined;
  /** Id of the trainer spec's eos piece when it is a control piece. */
  readonly eosId: number | undefined;
  /** The eos id, when there is one. */
  readonly stopTokens: readonly number[];
  readonly #vocab: Vocabulary;
  readonly #normalizer: Normalizer;
  readonly #model: SegmentationModel;
  readonly #unkSurface: string;
  readonly #leadingSpace: LeadingSpaceRule;

  private constructor(bytes: Uint8Array, path: string) {
    const proto = parseModelProto(bytes, path);
    const { trainerSpec, normalizerSpec, denormalizerSpec } = proto;
    const modelType = MODEL_TYPE_NAMES[trainerSpec.modelType] ?? `${trainerSpec.modelType}`;
    if (trainerSpec.modelType !== ModelType.bpe && trainerSpec.modelType !== ModelType.unigram) {
      throw new UnsupportedTokenizerError(
        path,
        `model type ${modelType} is not supported: only BPE and UNIGRAM models are`,
      );
    }
    if (denormalizerSpec !== undefined && denormalizerSpec.precompiledCharsmap.length > 0) {
      throw new UnsupportedTokenizerError(
        path,
        `denormalization rules ("${denormalizerSpec.name}") are not supported`,
      );
    }
    if (proto.pieces.length === 0) {
      throw new TokenizerFormatError(path, 0, "the model has no pieces; it is not a tokenizer");
    }
    this.#vocab = new Vocabulary(proto, path);
    const charsmap = normalizerSpec.precompiledCharsmap.length === 0
      ? undefined
      : Charsmap.parse(normalizerSpec.precompiledCharsmap, path, normalizerSpec.charsmapOffset);
    this.#normalizer = new Normalizer(normalizerSpec, {
      treatWhitespaceAsSuffix: trainerSpec.treatWhitespaceAsSuffix,
      userDefined: this.#vocab.userDefined,
      charsmap,
    });
    this.#model = trainerSpec.modelType === ModelType.bpe
      ? new BpeModel(this.#vocab)
      : new UnigramModel(this.#vocab);
    this.#unkSurface = trainerSpec.unkSurface;
    this.#leadingSpace = {
      strip: normalizerSpec.addDummyPrefix || normalizerSpec.removeExtraWhitespaces,
      removeExtraWhitespaces: normalizerSpec.removeExtraWhitespaces,
    };
    this.vocabSize = this.#vocab.size;
    this.bosId = this.#controlId(trainerSpec.bosPiece);
    this.eosId = this.#controlId(trainerSpec.eosPiece);
    this.stopTokens = this.eosId === undefined ? [] : [this.eosId];
  }

  /**
   * Reads a SentencePiece model from the bytes of its file.
   *
   * @param path the file name, for error messages
   * @throws {TokenizerFormatError} when the file is malformed
   * @throws {UnsupportedTokenizerError} for WORD and CHAR models and denormalization rules
   */
  static parse(bytes: Uint8Array, path: string): SentencePieceTokenizer {
    return new SentencePieceTokenizer(bytes, path);
  }

  /** Encodes `text` as sentencepiece's `encode(text, add_bos=bos, add_eos=eos)` does. */
  encode(text: string, options: EncodeOptions = {}): number[] {
    const vocab = this.#vocab;
    const segmentation: Segmentation = { pieces: [], ids: [] };
    this.#model.segment(this.#normalizer.normalize(text), segmentation);
    const ids: number[] = [];
    if (options.bos) ids.push(this.#required(this.bosId, "bos"));
    let previousIsUnknown = false;
    const encoder = new TextEncoder();
    for (let i = 0; i < segmentation.ids.length; i++) {
      const id = segmentation.ids[i]!;
      const isUnknown = vocab.type(id) === PieceType.unknown;
      if (isUnknown && vocab.byteFallback) {
        for (const byte of encoder.encode(segmentation.pieces[i]!)) ids.push(vocab.byteId(byte));
      } else if (!(isUnknown && previousIsUnknown)) {
        // sentencepiece merges a run of unknown pieces into one, so one <unk> id stands for it.
        ids.push(id);
      }
      previousIsUnknown = isUnknown;
    }
    if (options.eos) ids.push(this.#required(this.eosId, "eos"));
    return ids;
  }

  /** Decodes ids as sentencepiece's `decode(ids)` does. */
  decode(ids: Iterable<number>): string {
    return decodeAll(this.#surface(), ids);
  }

  /** A streaming decoder whose output, flushed, equals {@link decode}. */
  decoder(): StreamingDecoder {
    return new TokenStreamDecoder(this.#surface());
  }

  /** The piece of `id` as stored in the model, e.g. `▁the` or `<0x0A>`. */
  idToPiece(id: number): string {
    return this.#vocab.pieces[this.#checkId(id)]!.piece;
  }

  #surface(): TokenSurface {
    const vocab = this.#vocab;
    const { strip, removeExtraWhitespaces } = this.#leadingSpace;
    // sentencepiece's is_bos_ws: whether a leading ▁ may still be the dummy prefix.
    let atStart = true;
    let strippedLast = false;
    return {
      errorMode: "per-byte",
      piece: (id, started) => {
        const byte = vocab.byteOf(this.#checkId(id));
        if (byte >= 0) return SINGLE_BYTES[byte]!;
        if (strippedLast || started) atStart = false;
        strippedLast = false;
        const { piece, type } = vocab.pieces[id]!;
        if (type === PieceType.control) return "";
        if (type === PieceType.unknown) return this.#unkSurface;
        let text = piece;
        if (atStart && strip && text.startsWith(SPACE_SYMBOL)) {
          text = text.slice(SPACE_SYMBOL.length);
          strippedLast = !removeExtraWhitespaces;
        }
        return text.replaceAll(SPACE_SYMBOL, " ");
      },
    };
  }

  #checkId(id: number): number {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
      throw new RangeError(
        `Cannot decode token ${id}: ids of this SentencePiece model are whole numbers in ` +
          `[0, ${this.vocabSize})`,
      );
    }
    return id;
  }

  #controlId(piece: string): number | undefined {
    const id = this.#vocab.pieceToId(piece);
    return this.#vocab.type(id) === PieceType.control ? id : undefined;
  }

  #required(id: number | undefined, which: "bos" | "eos"): number {
    if (id === undefined) {
      throw new RangeError(
        `Cannot encode with ${which}: this SentencePiece model has no ${which} control piece`,
      );
    }
    return id;
  }
}
