/**
 * The one detokenizer both tokenizer kinds share: each tokenizer only says what a token stands
 * for (raw bytes that may join their neighbours, or whole text), and this turns the sequence into
 * text without ever splitting a character. `decode(ids)` is the same machine run to the end, so
 * streamed and one-shot decoding cannot disagree.
 *
 * @module
 */

import type { StreamingDecoder } from "./tokenizer.ts";
import { type Utf8ErrorMode, Utf8Stream } from "./utf8_stream.ts";

/**
 * What one token stands for, from one tokenizer's point of view, for one stream: a fresh instance
 * per stream because SentencePiece's leading-space rule looks at what came before.
 */
export interface TokenSurface {
  /** How malformed bytes from {@link piece} are replaced. */
  readonly errorMode: Utf8ErrorMode;
  /**
   * Raw bytes that may continue or be continued by neighbouring tokens' bytes, or a string of
   * whole text, before which unfinished bytes count as malformed. Throws a RangeError for an id
   * outside the vocabulary.
   *
   * @param started whether any text precedes this token in the stream
   */
  piece(id: number, started: boolean): Uint8Array | string;
}

/** A {@link StreamingDecoder} over a tokenizer's {@link TokenSurface}. */
export class TokenStreamDecoder implements StreamingDecoder {
  readonly #surface: TokenSurface;
  readonly #utf8: Utf8Stream;
  #started = false;

  /** @param surface the tokenizer's per-stream view of its tokens */
  constructor(surface: TokenSurface) {
    this.#surface = surface;
    this.#utf8 = new Utf8Stream(surface.errorMode);
  }

  /** Adds one token and returns the text it completes. */
  push(id: number): string {
    // Held-back bytes always turn into at least one character, so they count as started text.
    const piece = this.#surface.piece(id, this.#started || this.#utf8.hasPending);
    const text = typeof piece === "string" ? this.#utf8.end() + piece : this.#utf8.push(piece);
    if (text !== "") this.#started = true;
    return text;
  }

  /** Returns held-back bytes that never completed, replaced by U+FFFD. */
  flush(): string {
    const text = this.#utf8.end();
    if (text !== "") this.#started = true;
    return text;
  }
}

/** Decodes a whole id sequence with a fresh decoder from `surface`. */
export function decodeAll(surface: TokenSurface, ids: Iterable<number>): string {
  const decoder = new TokenStreamDecoder(surface);
  let text = "";
  for (const id of ids) text += decoder.push(id);
  return text + decoder.flush();
}
