/**
 * The counters a generation keeps as it runs, shared by plain decoding and lookahead.
 *
 * @module
 */

/** Counters of one generation, updated as it runs. */
export interface GenerationStats {
  /** Prompt tokens, BOS included. */
  promptTokens: number;
  /** Seconds spent running the prompt through the model. */
  prefillSeconds: number;
  /** Tokens yielded so far; the stop token is not counted. */
  generatedTokens: number;
  /** Seconds from the end of prefill to the last token yielded. */
  decodeSeconds: number;
  /** Forward calls made, prefill included. */
  modelCalls: number;
  /** Why generation ended: a stop token, or the token budget. */
  finishReason: "stop" | "length" | undefined;
  /** Lookahead's counters, when it is used. */
  lookahead?: LookaheadStats;
  /** Where the calls ran: the backend's name, then its kernel set if it has one (`cpu avx512`). */
  backend?: string;
}

/** Counters at zero, for a generation about to start. */
export function emptyGenerationStats(): GenerationStats {
  return {
    promptTokens: 0,
    prefillSeconds: 0,
    generatedTokens: 0,
    decodeSeconds: 0,
    modelCalls: 0,
    finishReason: undefined,
  };
}

/** Counters lookahead adds to the generation stats. */
export interface LookaheadStats {
  /** Calls made while decoding (prefill excluded). */
  decodeCalls: number;
  /** `acceptance[k]`: calls that accepted k verified tokens beyond the first. */
  readonly acceptance: number[];
}
