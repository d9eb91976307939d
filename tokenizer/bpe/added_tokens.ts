/**
 * Added tokens: strings the tokenizer recognises in the text before normalizing and splitting it,
 * such as `<|im_end|>`. Special ones are recognised only when the caller allows it (chat
 * templates do; user text never does, so it cannot forge a turn), ordinary ones always.
 *
 * @module
 */

/** One added token as tokenizer.json lists it. */
export interface AddedToken {
  readonly id: number;
  readonly content: string;
  readonly special: boolean;
  /** Takes the whitespace before it. */
  readonly lstrip: boolean;
  /** Takes the whitespace after it. */
  readonly rstrip: boolean;
  /** Matches only where no word character touches it. */
  readonly singleWord: boolean;
}

/** A cut of the text: ordinary text, or an added token's id. */
export type Segment =
  | { readonly text: string; readonly start: number }
  | { readonly id: number };

/** Finds added tokens in text, leftmost first and longest at one position. */
export class AddedTokens {
  readonly tokens: readonly AddedToken[];
  readonly #byContent: ReadonlyMap<string, AddedToken>;
  readonly #patterns = new Map<string, RegExp | undefined>();

  /** @param tokens every added token */
  constructor(tokens: readonly AddedToken[]) {
    this.tokens = tokens;
    this.#byContent = new Map(tokens.map((token) => [token.content, token]));
  }

  /** The added token with this content, if any. */
  get(content: string): AddedToken | undefined {
    return this.#byContent.get(content);
  }

  /**
   * Cuts `text` at the added tokens found in it: ordinary ones always, special ones when
   * `allowed` says so ("all", or the list of contents allowed), none overlapping `plainRanges`.
   *
   * @throws {RangeError} when `allowed` names a string that is not a special token
   */
  split(
    text: string,
    allowed: "all" | readonly string[],
    plainRanges: readonly (readonly [number, number])[] = [],
  ): Segment[] {
    const pattern = this.#pattern(allowed);
    if (pattern === undefined) return text === "" ? [] : [{ text, start: 0 }];
    const segments: Segment[] = [];
    let last = 0;
    for (const match of text.matchAll(pattern)) {
      const end = match.index + match[0].length;
      if (plainRanges.some(([from, to]) => match.index < to && end > from)) continue;
      const token = this.#byContent.get(match.groups!.token!)!;
      if (match.index > last) segments.push({ text: text.slice(last, match.index), start: last });
      segments.push({ id: token.id });
      last = match.index + match[0].length;
    }
    if (last < text.length) segments.push({ text: text.slice(last), start: last });
    return segments;
  }

  #pattern(allowed: "all" | readonly string[]): RegExp | undefined {
    const key = allowed === "all" ? "\u0000all" : allowed.join("\u0000");
    if (this.#patterns.has(key)) return this.#patterns.get(key);
    if (allowed !== "all") {
      for (const content of allowed) {
        if (!this.#byContent.get(content)?.special) {
          throw new RangeError(`Cannot encode: "${content}" is not a special token`);
        }
      }
    }
    const wanted = this.tokens.filter((token) =>
      !token.special || allowed === "all" || allowed.includes(token.content)
    );
    // Longest first: at one position the alternation takes the first that matches.
    const alternatives = [...wanted].sort((a, b) => b.content.length - a.content.length).map(
      (token) => {
        let source = `(?<token>${RegExp.escape(token.content)})`;
        if (token.singleWord) source = `(?<![\\p{L}\\p{N}_])${source}(?![\\p{L}\\p{N}_])`;
        if (token.lstrip) source = `\\p{White_Space}*${source}`;
        if (token.rstrip) source = `${source}\\p{White_Space}*`;
        return `(?:${source})`;
      },
    );
    const pattern = alternatives.length === 0
      ? undefined
      : new RegExp(alternatives.join("|"), "gu");
    this.#patterns.set(key, pattern);
    return pattern;
  }
}
