/**
 * The tiktoken tokenizer of Llama 3, 3.1 and 3.2, identical to Meta's reference (tiktoken with
 * Llama 3's pattern and special tokens): split text with the pre-tokenization pattern, look each
 * piece up whole, else merge its UTF-8 bytes by rank. Special tokens are recognised in the text
 * only when allowed, and are otherwise encoded as ordinary text.
 *
 * Meta's wrapper also cuts inputs into 400,000-character slices and runs of 25,000 spaces or
 * non-spaces, a workaround for a stack overflow in tiktoken's Rust code. That cut can change
 * tokens at the slice boundaries; this implementation does not overflow and does not cut, giving
 * tiktoken's own result for any length.
 *
 * @module
 */

import { mergePairs } from "../pair_merge.ts";
import { decodeAll, TokenStreamDecoder, type TokenSurface } from "../streaming_decoder.ts";
import type { EncodeOptions, StreamingDecoder, Tokenizer } from "../tokenizer.ts";
import {
  LLAMA3_BOS,
  LLAMA3_EOS,
  LLAMA3_PATTERN,
  LLAMA3_SPECIAL_TOKENS,
  LLAMA3_STOP_TOKENS,
} from "./llama3.ts";
import { latin1, parseRanksFile, type Ranks } from "./ranks_file.ts";

// Bounds the per-piece cache; see the SentencePiece BPE model for the same trade-off.
const MAX_CACHED_PIECES = 1 << 16;

const NON_ASCII = /[\u0080-\uffff]/;

/** A Llama 3 tiktoken `tokenizer.model` ready to encode and decode. */
export class TiktokenTokenizer implements Tokenizer {
  /** Always `tiktoken`. */
  readonly kind = "tiktoken";
  /** Always: Llama 3 prompts start with `<|begin_of_text|>`. */
  readonly addBos = true;
  /** Number of ranks plus the 256 special tokens. */
  readonly vocabSize: number;
  /** `<|begin_of_text|>`. */
  readonly bosId: number;
  /** `<|end_of_text|>`. */
  readonly eosId: number;
  /** `<|end_of_text|>`, `<|eot_id|>`, `<|eom_id|>`. */
  readonly stopTokens: readonly number[];
  readonly #ranks: Ranks;
  readonly #specialIds: ReadonlyMap<string, number>;
  // Any special token, longest first so that no name shadows a longer one it is a prefix of.
  readonly #specialPattern: RegExp;
  readonly #tokenBytes: readonly Uint8Array[];
  readonly #cache = new Map<string, readonly number[]>();

  private constructor(ranks: Ranks) {
    this.#ranks = ranks;
    const base = ranks.tokens.length;
    this.#specialIds = new Map(LLAMA3_SPECIAL_TOKENS.map((name, i) => [name, base + i]));
    this.#specialPattern = new RegExp(
      [...LLAMA3_SPECIAL_TOKENS].sort((a, b) => b.length - a.length)
        .map((name) => name.replace(/[|]/g, "\\|")).join("|"),
      "g",
    );
    const encoder = new TextEncoder();
    this.#tokenBytes = [
      ...ranks.tokens.map((token) => Uint8Array.from(token, (c) => c.charCodeAt(0))),
      ...LLAMA3_SPECIAL_TOKENS.map((name) => encoder.encode(name)),
    ];
    this.vocabSize = this.#tokenBytes.length;
    this.bosId = this.#specialIds.get(LLAMA3_BOS)!;
    this.eosId = this.#specialIds.get(LLAMA3_EOS)!;
    this.stopTokens = LLAMA3_STOP_TOKENS.map((name) => this.#specialIds.get(name)!);
  }

  /**
   * Reads a Llama 3 tokenizer from the bytes of its ranks file.
   *
   * @param path the file name, for error messages
   * @throws {TokenizerFormatError} when the file is malformed
   */
  static parse(bytes: Uint8Array, path: string): TiktokenTokenizer {
    return new TiktokenTokenizer(parseRanksFile(bytes, path));
  }

  /** The id of special token `name`, e.g. `<|eot_id|>`, or undefined. */
  specialId(name: string): number | undefined {
    return this.#specialIds.get(name);
  }

  /**
   * Encodes `text` as Meta's `Tokenizer.encode(text, bos=, eos=, allowed_special=)` does.
   * Throws a RangeError when `allowedSpecial` names something that is not a special token.
   */
  encode(text: string, options: EncodeOptions = {}): number[] {
    const ids: number[] = [];
    if (options.bos) ids.push(this.bosId);
    const allowed = this.#allowed(options.allowedSpecial ?? []);
    // tiktoken sees UTF-8, where a lone surrogate can only arrive as U+FFFD.
    const input = text.toWellFormed();
    let start = 0;
    const plain = options.plainRanges ?? [];
    if (allowed.size > 0) {
      for (const match of input.matchAll(this.#specialPattern)) {
        if (!allowed.has(match[0])) continue;
        const end = match.index + match[0].length;
        if (plain.some(([from, to]) => match.index < to && end > from)) continue;
        this.#encodeOrdinary(input.slice(start, match.index), ids);
        ids.push(this.#specialIds.get(match[0])!);
        start = match.index + match[0].length;
      }
    }
    this.#encodeOrdinary(input.slice(start), ids);
    if (options.eos) ids.push(this.eosId);
    return ids;
  }

  /** Decodes ids; bytes that are not UTF-8 become U+FFFD as Python's `errors="replace"` does. */
  decode(ids: Iterable<number>): string {
    return decodeAll(this.#surface(), ids);
  }

  /** A streaming decoder whose output, flushed, equals {@link decode}. */
  decoder(): StreamingDecoder {
    return new TokenStreamDecoder(this.#surface());
  }

  #allowed(allowedSpecial: "all" | readonly string[]): ReadonlySet<string> {
    if (allowedSpecial === "all") return new Set(this.#specialIds.keys());
    for (const name of allowedSpecial) {
      if (!this.#specialIds.has(name)) {
        throw new RangeError(`Cannot encode: "${name}" is not a Llama 3 special token`);
      }
    }
    return new Set(allowedSpecial);
  }

  #encodeOrdinary(text: string, ids: number[]): void {
    for (const [piece] of text.matchAll(LLAMA3_PATTERN)) {
      let pieceIds = this.#cache.get(piece);
      if (pieceIds === undefined) {
        pieceIds = this.#encodePiece(piece);
        if (this.#cache.size >= MAX_CACHED_PIECES) this.#cache.clear();
        this.#cache.set(piece, pieceIds);
      }
      for (const id of pieceIds) ids.push(id);
    }
  }

  #encodePiece(piece: string): number[] {
    const { rankOf } = this.#ranks;
    const bytes = NON_ASCII.test(piece) ? latin1(new TextEncoder().encode(piece)) : piece;
    const whole = rankOf.get(bytes);
    if (whole !== undefined) return [whole];
    const parts = mergePairs([...bytes], (left, right) => rankOf.get(left + right));
    // Every part is a ranked token: single bytes all are, and merges only make ranked ones.
    return parts.map((part) => rankOf.get(part)!);
  }

  #surface(): TokenSurface {
    return {
      errorMode: "maximal-subpart",
      piece: (id) => {
        const bytes = Number.isInteger(id) ? this.#tokenBytes[id] : undefined;
        if (bytes === undefined) {
          throw new RangeError(
            `Cannot decode token ${id}: ids of this tokenizer are whole numbers in ` +
              `[0, ${this.vocabSize})`,
          );
        }
        return bytes;
      },
    };
  }
}
