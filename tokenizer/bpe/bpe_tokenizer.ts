/**
 * A BPE tokenizer assembled from parts: added tokens cut the text, a normalizer and a
 * pre-tokenizer turn each cut into words, the BPE model turns words into ids, and a decoder spec
 * turns ids back into text. tokenizer.json files and GGUF vocabularies both describe one.
 *
 * @module
 */

import { decodeAll, TokenStreamDecoder, type TokenSurface } from "../streaming_decoder.ts";
import type { EncodeOptions, StreamingDecoder, Tokenizer } from "../tokenizer.ts";
import type { AddedTokens } from "./added_tokens.ts";
import type { BpeModel } from "./bpe.ts";
import { type DecoderSpec, decoderSurface } from "./decoder.ts";
import type { Normalize, PreTokenize } from "./pipeline.ts";

/** Everything a {@link BpeTokenizer} is made of. */
export interface BpeTokenizerParts {
  readonly kind: "tokenizer.json" | "gguf";
  /** The string of every id; undefined for ids the file leaves out. */
  readonly tokens: readonly (string | undefined)[];
  readonly added: AddedTokens;
  readonly normalize: Normalize | undefined;
  readonly preTokenize: PreTokenize | undefined;
  readonly model: BpeModel;
  readonly decoder: DecoderSpec;
  readonly bosId: number | undefined;
  readonly eosId: number | undefined;
  /** Whether the model expects BOS before a prompt. */
  readonly addBos: boolean;
  readonly stopTokens: readonly number[];
}

/** A byte-level or SentencePiece-style BPE tokenizer from a tokenizer.json or a GGUF. */
export class BpeTokenizer implements Tokenizer {
  readonly kind: "tokenizer.json" | "gguf";
  readonly vocabSize: number;
  readonly bosId: number | undefined;
  readonly eosId: number | undefined;
  /** Whether the model expects BOS before a prompt (its file says so). */
  readonly addBos: boolean;
  readonly stopTokens: readonly number[];
  readonly #parts: BpeTokenizerParts;

  /**
   * Assembles a tokenizer; `parseTokenizer` and `ggufTokenizer` build the parts from files.
   *
   * @param parts the assembled stages
   */
  constructor(parts: BpeTokenizerParts) {
    this.#parts = parts;
    this.kind = parts.kind;
    this.vocabSize = parts.tokens.length;
    this.bosId = parts.bosId;
    this.eosId = parts.eosId;
    this.addBos = parts.addBos;
    this.stopTokens = parts.stopTokens;
  }

  /**
   * Encodes `text` as Hugging Face tokenizers do. Special tokens written in the text are read as
   * plain text unless `allowedSpecial` lets them through (`encode_special_tokens`), ordinary added
   * tokens always are tokens.
   *
   * @throws {RangeError} when `bos` or `eos` is asked for and the model has none, or
   * `allowedSpecial` names something that is not a special token
   */
  encode(text: string, options: EncodeOptions = {}): number[] {
    const { added, normalize, preTokenize, model } = this.#parts;
    const ids: number[] = [];
    if (options.bos) ids.push(this.#required(this.bosId, "beginning-of-sequence"));
    const segments = added.split(
      text.toWellFormed(),
      options.allowedSpecial ?? [],
      options.plainRanges,
    );
    for (const segment of segments) {
      if ("id" in segment) {
        ids.push(segment.id);
        continue;
      }
      const normalized = normalize ? normalize(segment.text) : segment.text;
      const words = preTokenize ? preTokenize([normalized], segment.start === 0) : [normalized];
      for (const word of words) model.encodeWord(word, ids);
    }
    if (options.eos) ids.push(this.#required(this.eosId, "end-of-sequence"));
    return ids;
  }

  /** Decodes ids to text, special tokens included. */
  decode(ids: Iterable<number>): string {
    return decodeAll(this.#surface(), ids);
  }

  /** A streaming decoder whose output, flushed, equals {@link decode}. */
  decoder(): StreamingDecoder {
    return new TokenStreamDecoder(this.#surface());
  }

  /** The vocabulary string of an id, e.g. `Ġthe` or `<|im_end|>`. */
  idToPiece(id: number): string {
    const token = this.#parts.tokens[id];
    if (token === undefined) throw new RangeError(`Token ${id} is not an id of this tokenizer`);
    return token;
  }

  /** The id of a special or added token written as text, e.g. `<|eot_id|>`, or undefined. */
  specialId(content: string): number | undefined {
    return this.#parts.added.get(content)?.id;
  }

  #required(id: number | undefined, what: string): number {
    if (id === undefined) {
      throw new RangeError(`Cannot encode: this tokenizer defines no ${what} token`);
    }
    return id;
  }

  #surface(): TokenSurface {
    return decoderSurface(this.#parts.decoder, this.#parts.tokens);
  }
}
