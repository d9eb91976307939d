/**
 * The largest model shapes llamane accepts, from whatever describes them (params.json, a bundle
 * manifest, a checkpoint's own header). Each maximum is several times the largest Llama there is
 * (Llama 3.1 405B: width 16384, 126 layers, 128 heads, FFN 53248, vocabulary 128256), so only a
 * corrupt or hostile file meets them; checked before anything is sized by them, they keep a few
 * bytes of JSON from asking for gigabytes.
 *
 * @module
 */

/** Upper bounds of the integer dimensions of {@link ModelConfig}. */
export const MODEL_LIMITS = {
  dim: 65536,
  nLayers: 1024,
  nHeads: 1024,
  nKvHeads: 1024,
  headDim: 1024,
  hiddenDim: 262144,
  vocabSize: 1 << 22,
} as const;

/** A dimension {@link MODEL_LIMITS} bounds. */
export type LimitedDimension = keyof typeof MODEL_LIMITS;

/**
 * Why `value` is not an acceptable `dimension`, or `undefined` when it is: a positive safe integer
 * at most its limit.
 */
export function dimensionProblem(dimension: LimitedDimension, value: unknown): string | undefined {
  const limit = MODEL_LIMITS[dimension];
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value <= 0) {
    return `must be a positive integer`;
  }
  return value > limit ? `is ${value}, more than the ${limit} any model needs` : undefined;
}
