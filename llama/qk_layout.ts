/**
 * A check that a checkpoint's q/k rows are in the order its layout claims. Meta checkpoints (and
 * GGUF) rotate adjacent pairs (x[2j], x[2j+1]); Hugging Face ones rotate halves (x[j], x[j+hd/2]).
 * A checkpoint in one order under the other's names loads and exports without error and then
 * writes degenerate text, so the order is tested on the weights themselves.
 *
 * The test: in a trained model, how much each RoPE plane of a head carries (the summed squares of
 * its two rows) changes smoothly from one frequency to the next, whereas pairing rows of two
 * different planes mixes unrelated amounts. For every q and k head, the roughness of that profile
 * is measured under both pairings; the per-head differences give a t statistic. Random weights
 * give |t| of 2 or less; SmolLM2 and the KJV model give -5 and -7 in their own order, and +13 and
 * +5 when their rows are in the other order. A single layer is not enough to tell (|t| near 2-3),
 * hence every layer.
 *
 * @module
 */

import type { TensorSource } from "../checkpoint/tensor_source.ts";
import type { ModelConfig } from "./config.ts";
import { layerTensorNames } from "./weights.ts";

/** The t statistic above which the checkpoint is taken to be in the other order. */
export const QK_LAYOUT_THRESHOLD = 4;
/** Fewer heads than this give no verdict. */
const MIN_HEADS = 4;

/** What the check found. */
export interface QkLayoutVerdict {
  /** Heads measured (q and k heads of every layer). */
  readonly heads: number;
  /** Positive when rotate-half pairing fits the rows better than adjacent pairs. */
  readonly t: number;
  /** Whether the rows look like rotate-half order under names that claim adjacent pairs. */
  readonly looksRotateHalf: boolean;
}

/** The checkpoint's q/k rows look like the other RoPE convention; `--force` exports anyway. */
export class QkLayoutError extends RangeError {
  /** What the check found. */
  readonly verdict: QkLayoutVerdict;

  /** Builds a message naming the checkpoint, the statistic and the way out. */
  constructor(path: string, verdict: QkLayoutVerdict) {
    super(
      `Cannot export "${path}": its q/k rows look like Hugging Face's rotate-half order ` +
        `(t = ${
          verdict.t.toFixed(1)
        } over ${verdict.heads} heads, above ${QK_LAYOUT_THRESHOLD}), ` +
        `but its tensor names say Meta's adjacent pairs, which would export a model that writes ` +
        `nonsense. Pass the Hugging Face folder (or its config.json) instead of renamed tensors, ` +
        `or --force if you know the order is right`,
    );
    this.name = "QkLayoutError";
    this.verdict = verdict;
  }
}

/** Sum over adjacent planes of |log energy difference|, planes given as coordinate pairs. */
function roughness(energy: Float64Array, planes: readonly (readonly [number, number])[]): number {
  let total = 0;
  let previous: number | undefined;
  for (const [a, b] of planes) {
    const e = Math.log(energy[a]! + energy[b]! + 1e-30);
    if (previous !== undefined) total += Math.abs(e - previous);
    previous = e;
  }
  return total;
}

/**
 * Measures the q/k row order of a checkpoint read under Meta's names (as {@link MetaView}s
 * present every checkpoint). Reads wq and wk of every layer.
 */
export async function measureQkLayout(
  source: TensorSource,
  config: ModelConfig,
): Promise<QkLayoutVerdict> {
  const { headDim, dim } = config;
  const half = headDim / 2;
  const pairs = Array.from({ length: half }, (_, j) => [2 * j, 2 * j + 1] as const);
  const halves = Array.from({ length: half }, (_, j) => [j, j + half] as const);
  const differences: number[] = [];
  for (let layer = 0; layer < config.nLayers; layer++) {
    const names = layerTensorNames(layer);
    for (const [name, heads] of [[names.wq, config.nHeads], [names.wk, config.nKvHeads]] as const) {
      const rows = await source.readFloat32(name);
      for (let head = 0; head < heads; head++) {
        const energy = new Float64Array(headDim);
        for (let c = 0; c < headDim; c++) {
          const row = rows.subarray((head * headDim + c) * dim, (head * headDim + c + 1) * dim);
          let sum = 0;
          for (const v of row) sum += v * v;
          energy[c] = sum;
        }
        differences.push(roughness(energy, pairs) - roughness(energy, halves));
      }
    }
  }
  const n = differences.length;
  const mean = differences.reduce((a, b) => a + b, 0) / n;
  const variance = differences.reduce((a, d) => a + (d - mean) ** 2, 0) / (n - 1);
  const t = variance > 0 ? mean / Math.sqrt(variance / n) : 0;
  return { heads: n, t, looksRotateHalf: n >= MIN_HEADS && t > QK_LAYOUT_THRESHOLD };
}
