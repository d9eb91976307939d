/**
 * How well a bundle predicts a text: its perplexity, teacher-forced as generation feeds it (calls
 * of the bundle's length, the oldest tokens evicted past the cache), and with a reference model
 * (the eager fp32 forward of a checkpoint) how far its predictions are from the reference's.
 * `llamane eval` and the quality benchmarks measure with it.
 *
 * @module
 */

import type { AttentionWindow } from "../llama/attention_window.ts";
import type { ModelConfig } from "../llama/config.ts";
import type { EagerSequence } from "../llama/forward.ts";
import { bundleLogitChunks } from "./compare.ts";
import { cacheWindow } from "./kv_cache.ts";
import type { LoadedModel } from "./model.ts";
import { argmax } from "./sampler.ts";
import { cacheShapeOf } from "./session.ts";

/** A model that predicts the same text alongside the bundle, such as `EagerLlama`. */
export interface ReferenceModel {
  /** Its shape, which must be the bundle's. */
  readonly config: ModelConfig;
  /** Starts a sequence in which each token attends to itself and the tokens in `window`. */
  begin(window: AttentionWindow): EagerSequence;
}

/** How the bundle's predictions compare with the reference's, position by position. */
export interface ReferenceEvaluation {
  /** The reference's mean next-token cross-entropy, nats. */
  readonly crossEntropy: number;
  /** The reference's perplexity. */
  readonly perplexity: number;
  /** The bundle's cross-entropy minus the reference's, nats. */
  readonly crossEntropyDelta: number;
  /** Fraction of positions where both predict the same most likely token. */
  readonly top1Agreement: number;
  /** Mean KL divergence of the bundle's distribution from the reference's, KL(ref || bundle), nats. */
  readonly meanKlDivergence: number;
}

/** What {@link evaluate} measured. */
export interface Evaluation {
  /** Tokens read, over every sequence. */
  readonly tokens: number;
  /** Predictions scored: every token but the first of each sequence. */
  readonly positions: number;
  /** The bundle's mean next-token cross-entropy (negative log-likelihood), nats. */
  readonly crossEntropy: number;
  /** `exp(crossEntropy)`. */
  readonly perplexity: number;
  /** Present when a reference model was given. */
  readonly reference?: ReferenceEvaluation;
}

/** Options of {@link evaluate}. */
export interface EvaluateOptions {
  /** Also run this model on the same tokens, with the bundle's window, and compare. */
  readonly reference?: ReferenceModel;
  /** Called after each call of the bundle with the positions scored so far and in all. */
  readonly onProgress?: (scored: number, total: number) => void;
}

/** The config fields that must agree for two models to predict over the same vocabulary alike. */
const SHAPE_FIELDS = [
  "vocabSize",
  "dim",
  "nLayers",
  "nHeads",
  "nKvHeads",
  "headDim",
  "hiddenDim",
] as const satisfies readonly (keyof ModelConfig)[];

/** The shape fields in which `reference` differs from `bundle`, as `name bundle/reference`. */
export function shapeDifferences(bundle: ModelConfig, reference: ModelConfig): string[] {
  return SHAPE_FIELDS.filter((field) => bundle[field] !== reference[field])
    .map((field) => `${field} ${bundle[field]} (bundle) vs ${reference[field]} (reference)`);
}

/**
 * Checks that `sequences` hold something to predict and that a reference has the bundle's shape,
 * before any work; returns the positions to score.
 *
 * @throws {RangeError} when no sequence has two tokens, or the reference's shape differs
 */
export function checkEvaluation(
  config: ModelConfig,
  sequences: readonly (readonly number[])[],
  referenceConfig?: ModelConfig,
): number {
  if (referenceConfig !== undefined) {
    const differences = shapeDifferences(config, referenceConfig);
    if (differences.length > 0) {
      throw new RangeError(
        `Cannot compare with the reference: its shape differs from the bundle's (${
          differences.join(", ")
        })`,
      );
    }
  }
  const total = sequences.reduce((n, s) => n + Math.max(0, s.length - 1), 0);
  if (total === 0) {
    throw new RangeError(
      "Cannot evaluate: the text must have at least 2 tokens (one to read, one to predict)",
    );
  }
  return total;
}

/** `log(sum(exp(row)))`, in float64. */
function logSumExp(row: ArrayLike<number>): number {
  let max = -Infinity;
  for (let v = 0; v < row.length; v++) max = Math.max(max, row[v]!);
  let sum = 0;
  for (let v = 0; v < row.length; v++) sum += Math.exp(row[v]! - max);
  return Math.log(sum) + max;
}

/**
 * KL(p || q) for the softmaxes p of `reference` and q of `bundle`, given log-normalizers:
 * `sum p (ref - bundle) - lseRef + lseBundle`, one exponential per entry.
 */
function klDivergence(
  reference: ArrayLike<number>,
  bundle: ArrayLike<number>,
  lseReference: number,
  lseBundle: number,
): number {
  let sum = 0;
  for (let v = 0; v < reference.length; v++) {
    sum += Math.exp(reference[v]! - lseReference) * (reference[v]! - bundle[v]!);
  }
  return Math.max(0, sum - lseReference + lseBundle);
}

/** Running sums over the scored positions. */
interface Tally {
  positions: number;
  bundleNll: number;
  referenceNll: number;
  agree: number;
  kl: number;
}

/**
 * Scores the bundle on `sequences`, each fed from an empty cache, every token predicted from those
 * before it: mean cross-entropy and perplexity, and with `options.reference` the agreement with
 * that model run on the same tokens with the same window (each token sees what it would see in the
 * bundle's cache).
 *
 * @throws {RangeError} as {@link checkEvaluation}
 */
export async function evaluate(
  model: LoadedModel,
  sequences: readonly (readonly number[])[],
  options: EvaluateOptions = {},
): Promise<Evaluation> {
  const { reference, onProgress } = options;
  const config = model.manifest.model;
  const total = checkEvaluation(config, sequences, reference?.config);
  const vocab = config.vocabSize;
  const tally: Tally = { positions: 0, bundleNll: 0, referenceNll: 0, agree: 0, kl: 0 };
  for (const tokens of sequences) {
    if (tokens.length < 2) continue;
    // The last token is only predicted, never read.
    const inputs = tokens.slice(0, -1);
    const referenceSequence = reference?.begin(cacheWindow(cacheShapeOf(model.manifest)));
    for await (const { offset, rows } of bundleLogitChunks(model, inputs)) {
      const count = rows.length / vocab;
      const referenceRows = referenceSequence?.next(inputs.slice(offset, offset + count));
      for (let r = 0; r < count; r++) {
        const target = tokens[offset + r + 1]!;
        const row = rows.subarray(r * vocab, (r + 1) * vocab);
        const lse = logSumExp(row);
        tally.bundleNll += lse - row[target]!;
        if (referenceRows !== undefined) {
          const expected = referenceRows.subarray(r * vocab, (r + 1) * vocab);
          const lseExpected = logSumExp(expected);
          tally.referenceNll += lseExpected - expected[target]!;
          tally.kl += klDivergence(expected, row, lseExpected, lse);
          if (argmax(row) === argmax(expected)) tally.agree++;
        }
      }
      tally.positions += count;
      onProgress?.(tally.positions, total);
    }
  }
  const crossEntropy = tally.bundleNll / tally.positions;
  const evaluation: Evaluation = {
    tokens: sequences.reduce((n, s) => n + s.length, 0),
    positions: tally.positions,
    crossEntropy,
    perplexity: Math.exp(crossEntropy),
  };
  if (reference === undefined) return evaluation;
  const referenceCrossEntropy = tally.referenceNll / tally.positions;
  return {
    ...evaluation,
    reference: {
      crossEntropy: referenceCrossEntropy,
      perplexity: Math.exp(referenceCrossEntropy),
      crossEntropyDelta: crossEntropy - referenceCrossEntropy,
      top1Agreement: tally.agree / tally.positions,
      meanKlDivergence: tally.kl / tally.positions,
    },
  };
}
