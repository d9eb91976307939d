/**
 * How far a bundle's logits are from the eager fp32 reference on the same tokens: the check
 * behind `llamane run --compare_eager`.
 *
 * @module
 */

import type { EagerLlama } from "../llama/forward.ts";
import { argmax } from "./sampler.ts";
import { ModelSession } from "./session.ts";
import type { LoadedModel } from "./model.ts";

/** Agreement between the bundle and the reference over a token sequence. */
export interface Comparison {
  /** Positions compared. */
  readonly positions: number;
  /** Largest |bundle logit - reference logit| over every position and vocabulary entry. */
  readonly maxAbsDifference: number;
  /** Fraction of positions where both pick the same top token. */
  readonly top1Agreement: number;
}

/** The logits rows of one call's tokens. */
export interface LogitChunk {
  /** Position in the sequence of the call's first token. */
  readonly offset: number;
  /** `[tokens, V]` row-major, one row per token of the call. */
  readonly rows: Float16Array | Float32Array;
}

/**
 * Feeds `tokens` from an empty cache as generation does, in calls of L tokens (one token per
 * call for a multifunction bundle, whose calls return only their last row), and yields each
 * call's logits. Past the cache, the oldest tokens are evicted: every token sees the C before it.
 */
export async function* bundleLogitChunks(
  model: LoadedModel,
  tokens: readonly number[],
): AsyncGenerator<LogitChunk> {
  const vocab = model.manifest.model.vocabSize;
  const session = new ModelSession(model);
  const step = model.manifest.export.multifunction ? 1 : model.inputLength;
  for (let offset = 0; offset < tokens.length; offset += step) {
    const chunk = tokens.slice(offset, offset + step);
    const rows = await session.call(chunk);
    yield { offset, rows: rows.subarray(0, chunk.length * vocab) };
  }
}

/** The bundle's logits for every position of `tokens` (see {@link bundleLogitChunks}), `[T, V]`. */
export async function bundleLogits(
  model: LoadedModel,
  tokens: readonly number[],
): Promise<Float32Array> {
  const vocab = model.manifest.model.vocabSize;
  const out = new Float32Array(tokens.length * vocab);
  for await (const { offset, rows } of bundleLogitChunks(model, tokens)) {
    out.set(rows, offset * vocab);
  }
  return out;
}

/**
 * Compares the bundle with the eager reference on `tokens`. Both see the whole sequence causally,
 * so `tokens` must fit in the bundle's cache plus one call (no eviction).
 */
export async function compareWithEager(
  model: LoadedModel,
  eager: EagerLlama,
  tokens: readonly number[],
): Promise<Comparison> {
  const { cacheLen } = model.manifest.export;
  if (tokens.length > cacheLen + 1) {
    throw new RangeError(
      `Cannot compare ${tokens.length} tokens: past ${
        cacheLen + 1
      } the bundle evicts and the reference does not`,
    );
  }
  const vocab = model.manifest.model.vocabSize;
  const actual = await bundleLogits(model, tokens);
  const expected = eager.forward(tokens);
  let maxAbsDifference = 0;
  let agree = 0;
  for (let t = 0; t < tokens.length; t++) {
    for (let v = 0; v < vocab; v++) {
      maxAbsDifference = Math.max(
        maxAbsDifference,
        Math.abs(actual[t * vocab + v]! - expected[t * vocab + v]!),
      );
    }
    if (argmax(actual, t * vocab, vocab) === argmax(expected, t * vocab, vocab)) agree++;
  }
  return { positions: tokens.length, maxAbsDifference, top1Agreement: agree / tokens.length };
}
