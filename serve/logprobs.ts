/**
 * Log probabilities of generated tokens, as the API reports them: the chosen token's and those
 * of the most likely alternatives, from the model's distribution over the tokenizer's ids
 * (log-softmax of the logits, before temperature and the nucleus filter).
 *
 * @module
 */

import type { Tokenizer } from "../tokenizer/tokenizer.ts";

/** One token and its log probability. */
export interface TokenProbability {
  /** The token's text (a character split across tokens shows as U+FFFD). */
  readonly token: string;
  readonly logprob: number;
  /** The UTF-8 bytes of `token`. */
  readonly bytes: readonly number[];
}

/** A generated token's log probability and its most likely alternatives, best first. */
export interface TokenLogprobs extends TokenProbability {
  readonly top: readonly TokenProbability[];
}

const encoder = new TextEncoder();

function probability(tokenizer: Tokenizer, id: number, logprob: number): TokenProbability {
  const token = tokenizer.decode([id]);
  return { token, logprob, bytes: [...encoder.encode(token)] };
}

/**
 * The log probabilities of `token` and of the `top` most likely ids, over the ids below
 * `tokenizer.vocabSize` of one row of logits.
 */
export function tokenLogprobs(
  logits: ArrayLike<number>,
  token: number,
  top: number,
  tokenizer: Tokenizer,
): TokenLogprobs {
  const ids = Math.min(tokenizer.vocabSize, logits.length);
  let max = -Infinity;
  for (let i = 0; i < ids; i++) max = Math.max(max, logits[i]!);
  let total = 0;
  for (let i = 0; i < ids; i++) total += Math.exp(logits[i]! - max);
  const logTotal = max + Math.log(total);
  // The `top` best ids, kept sorted by a small insertion: `top` is at most 20.
  const best: number[] = [];
  for (let i = 0; i < ids && top > 0; i++) {
    if (best.length === top && logits[i]! <= logits[best[top - 1]!]!) continue;
    let at = best.length;
    while (at > 0 && logits[best[at - 1]!]! < logits[i]!) at--;
    best.splice(at, 0, i);
    if (best.length > top) best.pop();
  }
  return {
    ...probability(tokenizer, token, logits[token]! - logTotal),
    top: best.map((id) => probability(tokenizer, id, logits[id]! - logTotal)),
  };
}
