/**
 * Stop strings matched across token boundaries: text is released only once no stop string could
 * begin in it, so that a stop split over several tokens (`"\n\n"` as two `"\n"`) is still found
 * and none of it reaches the client.
 *
 * @module
 */

/** Finds the first stop string in a stream of text pieces. */
export class StopMatcher {
  readonly #stops: readonly string[];
  /** Text received but not released: it might be the start of a stop string. */
  #held = "";

  /** Matches `stops` (empty strings are ignored). */
  constructor(stops: readonly string[]) {
    this.#stops = stops.filter((stop) => stop !== "");
  }

  /**
   * Adds a piece of text. Returns the text that can be released, and whether a stop string was
   * found: then the text ends where the stop string began, and nothing more should be pushed.
   */
  push(piece: string): { readonly text: string; readonly stopped: boolean } {
    const text = this.#held + piece;
    let first = -1;
    for (const stop of this.#stops) {
      const at = text.indexOf(stop);
      if (at >= 0 && (first < 0 || at < first)) first = at;
    }
    if (first >= 0) {
      this.#held = "";
      return { text: text.slice(0, first), stopped: true };
    }
    const keep = this.#longestStopPrefixAtEnd(text);
    this.#held = text.slice(text.length - keep);
    return { text: text.slice(0, text.length - keep), stopped: false };
  }

  /** Ends the stream: the text held back, which no stop string completed. */
  flush(): string {
    const text = this.#held;
    this.#held = "";
    return text;
  }

  /** Length of the longest end of `text` that some stop string starts with. */
  #longestStopPrefixAtEnd(text: string): number {
    let longest = 0;
    for (const stop of this.#stops) {
      for (let length = Math.min(stop.length - 1, text.length); length > longest; length--) {
        if (text.endsWith(stop.slice(0, length))) {
          longest = length;
          break;
        }
      }
    }
    return longest;
  }
}
