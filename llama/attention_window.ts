/**
 * Which earlier tokens a token attends to once a sequence outgrows a KV cache of C slots. The
 * first few tokens stay for good and the window slides over the rest: a trained Llama puts much
 * of every head's attention on the sequence's first tokens (attention sinks), and a window that
 * drops them degrades every prediction after it. A token reaches back to the sinks only within the
 * distances the model was trained on, so a checkpoint that does not say how far keeps no sinks
 * (docs/design.md, "A sliding window per token").
 *
 * @module
 */

/** The most tokens at the start of a sequence that a cache keeps for good. */
export const MAX_ATTENTION_SINKS = 4;

/** What a token attends to, besides itself. */
export interface AttentionWindow {
  /** Earlier tokens a token attends to, at most: the cache's slots C. */
  readonly cacheLength: number;
  /** Tokens at the start of the sequence that the cache keeps for good. */
  readonly sinks: number;
  /** Distances at which the sinks are attended to: below the model's trained context. */
  readonly sinkReach: number;
}

/** Every earlier token: one causal forward over the whole sequence. */
export const UNBOUNDED_WINDOW: AttentionWindow = {
  cacheLength: Infinity,
  sinks: 0,
  sinkReach: 0,
};

/**
 * The window of a cache of `cacheLength` slots for a model trained on `trainedContext` positions:
 * 4 sinks, or a quarter of a smaller cache, when the model was trained beyond the cache; none
 * otherwise, or when the context is unknown.
 */
export function attentionWindow(
  cacheLength: number,
  trainedContext: number | undefined,
): AttentionWindow {
  const sinks = trainedContext !== undefined && trainedContext > cacheLength
    ? Math.min(MAX_ATTENTION_SINKS, Math.floor(cacheLength / 4))
    : 0;
  return { cacheLength, sinks, sinkReach: sinks === 0 ? 0 : trainedContext! };
}

/**
 * Whether the token at position `key` is in the window of the one at `query` (causality aside):
 * a sink within reach, or one of the `cacheLength - sinks` tokens before it. Until the sequence
 * outgrows the cache, every earlier token is.
 */
export function inWindow(window: AttentionWindow, query: number, key: number): boolean {
  const { cacheLength, sinks, sinkReach } = window;
  return (key < sinks && query - key < sinkReach) || query - key <= cacheLength - sinks;
}

/** The first position after the sinks that the token at `query` still attends to. */
export function firstRecentPosition(window: AttentionWindow, query: number): number {
  const { cacheLength, sinks } = window;
  return Math.max(sinks, query - (cacheLength - sinks));
}

/** The cache slot of the token at `position`: sinks keep theirs, the rest share a ring buffer. */
export function cacheSlot(window: AttentionWindow, position: number): number {
  const { cacheLength, sinks } = window;
  return position < sinks ? position : sinks + (position - sinks) % (cacheLength - sinks);
}
