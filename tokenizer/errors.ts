/**
 * The errors a tokenizer throws while loading. A file that cannot be read as a tokenizer gives a
 * {@link TokenizerFormatError}; a well-formed file asking for something this implementation does
 * not do (a WORD model, a denormalizer) gives an {@link UnsupportedTokenizerError}. Bad ids at
 * decode time and impossible encode options are plain `RangeError`s.
 *
 * @module
 */

/** A file that is not a well-formed tokenizer: truncated, corrupt, or of no known format. */
export class TokenizerFormatError extends SyntaxError {
  /** The tokenizer file, or the name given to `parseTokenizer` for bytes in memory. */
  readonly path: string;
  /** Byte offset in the file where the problem was found. */
  readonly offset: number;

  /**
   * Builds the message `Cannot load tokenizer "<path>": <detail>`.
   *
   * @param path the tokenizer file
   * @param offset byte offset in the file where the problem was found
   * @param detail what is wrong, with values quoted
   */
  constructor(path: string, offset: number, detail: string) {
    super(`Cannot load tokenizer "${path}": ${detail}`);
    this.name = "TokenizerFormatError";
    this.path = path;
    this.offset = offset;
  }
}

/** A well-formed tokenizer file that uses a feature this implementation does not support. */
export class UnsupportedTokenizerError extends TypeError {
  /** The tokenizer file. */
  readonly path: string;

  /**
   * Builds the message `Cannot load tokenizer "<path>": <detail>`.
   *
   * @param path the tokenizer file
   * @param detail the unsupported feature and what to do
   */
  constructor(path: string, detail: string) {
    super(`Cannot load tokenizer "${path}": ${detail}`);
    this.name = "UnsupportedTokenizerError";
    this.path = path;
  }
}
