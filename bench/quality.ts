/**
 * Benchmark: how closely KJV bundles of each export precision follow the fp32 reference
 * on held-out text. The reference is `EagerLlama` (llama/forward.ts) on the same checkpoint: the
 * project's eager fp32 forward, which the test suite checks against PyTorch (within 1e-4). Over
 * 16 windows of 256 held-out tokens (each read after BOS, inside the cache: no eviction), every
 * bundle's logits on the CPU backend give the fraction of positions whose argmax is the
 * reference's, and the mean next-token cross-entropy (nats) on the held-out tokens, next to the
 * reference's own. The figures are deterministic: one run, no timing.
 *
 * @module
 */

import type { Bench, Figures } from "./bench.ts";
import { EagerLlama } from "../llama/forward.ts";
import { openModel } from "../llama/open.ts";
import { CpuBackend } from "../runtime/backend/cpu.ts";
import { bundleLogits } from "../runtime/compare.ts";
import { LoadedModel } from "../runtime/model.ts";
import { argmax } from "../runtime/sampler.ts";
import { KJV } from "./bench_models.ts";
import { type BundleOptions, cachedBundle } from "./bundle_cache.ts";
import { heldOutWindows, kjvHeldOut, type Window } from "./kjv_heldout.ts";
import { round } from "./spread.ts";

const WINDOWS = 16;
const WINDOW_TOKENS = 256;
const UNQUANTIZED: BundleOptions = { linearQuantize: "none", embeddingQuantize: "none" };

/** The exports compared: a figure prefix and the options (defaults elsewhere: fp16, c4w, -E 8,0). */
const VARIANTS: readonly { name: string; options: BundleOptions }[] = [
  { name: "fp32_none", options: { ...UNQUANTIZED, dtype: "fp32" } },
  { name: "fp16_none", options: UNQUANTIZED },
  { name: "fp16_c4w", options: {} },
  { name: "fp16_b4w", options: { linearQuantize: "b4w" } },
  { name: "fp16_c8w", options: { linearQuantize: "c8w" } },
  { name: "fp16_c4w_e4_32", options: { embeddingQuantize: { bits: 4, groupSize: 32 } } },
];

/** `-log softmax(row)[target]`, in float64. */
function crossEntropy(logits: Float32Array, row: number, vocab: number, target: number): number {
  const offset = row * vocab;
  let max = -Infinity;
  for (let v = 0; v < vocab; v++) max = Math.max(max, logits[offset + v]!);
  let sum = 0;
  for (let v = 0; v < vocab; v++) sum += Math.exp(logits[offset + v]! - max);
  return Math.log(sum) + max - logits[offset + target]!;
}

/** Sums over every scored position of every window. */
interface Tally {
  positions: number;
  agree: number;
  crossEntropy: number;
}

function score(
  tally: Tally,
  window: Window,
  logits: Float32Array,
  reference: Float32Array,
  vocab: number,
): void {
  for (let t = 0; t < window.targets.length; t++) {
    tally.positions++;
    if (argmax(logits, t * vocab, vocab) === argmax(reference, t * vocab, vocab)) tally.agree++;
    tally.crossEntropy += crossEntropy(logits, t, vocab, window.targets[t]!);
  }
}

/** `quality` */
export const quality: Bench = {
  name: "quality",
  description: "top-1 agreement with the fp32 reference (EagerLlama on the same checkpoint, " +
    "validated against PyTorch by the test suite) and mean next-token cross-entropy (nats) of " +
    `KJV bundles (fp32 and fp16 unquantized, fp16 c4w, b4w, c8w, c4w with -E 4,32) on the CPU ` +
    `backend, over ${WINDOWS} windows of ${WINDOW_TOKENS} held-out tokens, each after BOS`,
  async run() {
    const windows = heldOutWindows(await kjvHeldOut(), WINDOWS, WINDOW_TOKENS);
    const references: Float32Array[] = [];
    const reference: Tally = { positions: 0, agree: 0, crossEntropy: 0 };
    let vocab: number;
    {
      using opened = await openModel({ checkpoint: KJV.checkpoint, params: KJV.params });
      const eager = await EagerLlama.load(opened.source, opened.config);
      vocab = opened.config.vocabSize;
      for (const window of windows) {
        const logits = eager.forward(window.inputs);
        references.push(logits);
        score(reference, window, logits, logits, vocab);
      }
    }
    const figures: Figures = {
      windows: WINDOWS,
      window_tokens: WINDOW_TOKENS,
      positions: reference.positions,
      reference_cross_entropy_nats: round(reference.crossEntropy / reference.positions, 4),
    };
    const cpu = await CpuBackend.create();
    for (const { name, options } of VARIANTS) {
      const bundle = await cachedBundle(KJV, options);
      using model = await LoadedModel.load(bundle, cpu);
      const tally: Tally = { positions: 0, agree: 0, crossEntropy: 0 };
      for (const [i, window] of windows.entries()) {
        score(tally, window, await bundleLogits(model, window.inputs), references[i]!, vocab);
      }
      const crossEntropyNats = tally.crossEntropy / tally.positions;
      Object.assign(figures, {
        [`${name}_top1_agreement`]: round(tally.agree / tally.positions, 4),
        [`${name}_cross_entropy_nats`]: round(crossEntropyNats, 4),
        [`${name}_cross_entropy_over_reference_nats`]: round(
          crossEntropyNats - reference.crossEntropy / reference.positions,
          4,
        ),
        [`${name}_weight_bytes`]: model.manifest.pieces.reduce((a, p) => a + p.weightBytes, 0),
      });
    }
    return figures;
  },
};
