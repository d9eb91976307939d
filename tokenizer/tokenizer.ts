/**
 * The interface every tokenizer implements, whatever its file format.
 *
 * @module
 */

/** Options of {@link Tokenizer.encode}. */
export interface EncodeOptions {
  /**
   * Prepend the beginning-of-sequence token.
   * @default false
   */
  readonly bos?: boolean;
  /**
   * Append the end-of-sequence token.
   * @default false
   */
  readonly eos?: boolean;
  /**
   * Special tokens recognised where they are written in the text (tiktoken and tokenizer.json:
   * SentencePiece never reads control symbols from text, as in the reference). Others are encoded
   * as ordinary text, as Llama 3's reference tokenizer does by default; user text in a chat never
   * gets them, so it cannot forge a turn.
   * @default []
   */
  readonly allowedSpecial?: "all" | readonly string[];
  /**
   * Spans `[start, end)` of the text (UTF-16 offsets) where no special token is read even when
   * allowed: the messages of a rendered chat. A special token overlapping a span is plain text.
   * @default []
   */
  readonly plainRanges?: readonly (readonly [number, number])[];
}

/**
 * Turns ids into text one token at a time. Bytes of a character split across tokens are held
 * back until the character is complete, so no chunk ever ends inside a UTF-8 sequence; the
 * concatenation of every chunk and the final {@link flush} equals `decode` of all the ids.
 */
export interface StreamingDecoder {
  /**
   * Adds one token and returns the text it completes (possibly empty). Throws a RangeError for an
   * id outside the vocabulary.
   */
  push(id: number): string;
  /** Ends the stream: returns held-back bytes that never completed, as U+FFFD replacements. */
  flush(): string;
}

/**
 * A loaded tokenizer: SentencePiece (Llama 1 and 2), tiktoken (Llama 3), a Hugging Face
 * tokenizer.json or a GGUF vocabulary.
 */
export interface Tokenizer {
  /** The file format it was loaded from. */
  readonly kind: "sentencepiece" | "tiktoken" | "tokenizer.json" | "gguf";
  /** Number of ids, special tokens included: every id is in `[0, vocabSize)`. */
  readonly vocabSize: number;
  /** Beginning-of-sequence id, or undefined when the model defines none. */
  readonly bosId: number | undefined;
  /** End-of-sequence id, or undefined when the model defines none. */
  readonly eosId: number | undefined;
  /**
   * Whether a prompt starts with BOS for this model: SentencePiece and tiktoken models always,
   * tokenizer.json and GGUF vocabularies as their file says.
   */
  readonly addBos: boolean;
  /** Ids that end generation (Llama 3: end of text, end of turn, end of message). */
  readonly stopTokens: readonly number[];
  /**
   * Encodes text to ids exactly as the reference implementation does.
   * Throws a RangeError when `bos` or `eos` is asked for and the model has no such token.
   */
  encode(text: string, options?: EncodeOptions): number[];
  /** Decodes ids to text. Throws a RangeError for an id outside the vocabulary. */
  decode(ids: Iterable<number>): string;
  /** A new streaming decoder, for printing text as tokens are generated. */
  decoder(): StreamingDecoder;
  /** The vocabulary entry of an id as stored in the file (not tiktoken), e.g. `▁the`. */
  idToPiece?(id: number): string;
}
