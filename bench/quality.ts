/**
 * Benchmark: how closely KJV bundles of each export precision follow the fp32 reference
 * on held-out text. The reference is `EagerLlama` (llama/forward.ts) on the same checkpoint: the
 * project's eager fp32 forward, which the test suite checks against PyTorch (within 1e-4). Over
 * 16 windows of 256 held-out tokens (each read after BOS, inside the cache: no eviction),
 * `evaluate` (runtime/evaluate.ts, what `llamane eval` reports) gives for every bundle on the CPU
 * backend the fraction of positions whose argmax is the reference's, the mean KL divergence from
 * the reference, and the mean next-token cross-entropy (nats) on the held-out tokens, next to the
 * reference's own. The figures are deterministic: one run, no timing.
 *
 * @module
 */

import type { Bench, Figures } from "./bench.ts";
import { EagerLlama } from "../llama/forward.ts";
import { openModel } from "../llama/open.ts";
import { CpuBackend } from "../runtime/backend/cpu.ts";
import { evaluate } from "../runtime/evaluate.ts";
import { LoadedModel } from "../runtime/model.ts";
import { KJV } from "./bench_models.ts";
import { type BundleOptions, cachedBundle } from "./bundle_cache.ts";
import { heldOutWindows, kjvHeldOut } from "./kjv_heldout.ts";
import { RecordedReference } from "./recorded_reference.ts";
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

/** `quality` */
export const quality: Bench = {
  name: "quality",
  description: "top-1 agreement with the fp32 reference (EagerLlama on the same checkpoint, " +
    "validated against PyTorch by the test suite), mean KL divergence from it and mean " +
    "next-token cross-entropy (nats) of " +
    `KJV bundles (fp32 and fp16 unquantized, fp16 c4w, b4w, c8w, c4w with -E 4,32) on the CPU ` +
    `backend, over ${WINDOWS} windows of ${WINDOW_TOKENS} held-out tokens, each after BOS`,
  async run() {
    const heldOut = await kjvHeldOut();
    const sequences = heldOutWindows(heldOut, WINDOWS, WINDOW_TOKENS);
    using opened = await openModel({ checkpoint: KJV.checkpoint, params: KJV.params });
    const reference = new RecordedReference(await EagerLlama.load(opened.source, opened.config));
    const figures: Figures = { windows: WINDOWS, window_tokens: WINDOW_TOKENS };
    const cpu = await CpuBackend.create();
    for (const { name, options } of VARIANTS) {
      const bundle = await cachedBundle(KJV, options);
      using model = await LoadedModel.load(bundle, cpu);
      const { positions, crossEntropy, reference: compared } = await evaluate(model, sequences, {
        reference,
      });
      Object.assign(figures, {
        positions,
        reference_cross_entropy_nats: round(compared!.crossEntropy, 4),
        [`${name}_top1_agreement`]: round(compared!.top1Agreement, 4),
        [`${name}_mean_kl_nats`]: round(compared!.meanKlDivergence, 6),
        [`${name}_cross_entropy_nats`]: round(crossEntropy, 4),
        [`${name}_cross_entropy_over_reference_nats`]: round(compared!.crossEntropyDelta, 4),
        [`${name}_weight_bytes`]: model.manifest.pieces.reduce((a, p) => a + p.weightBytes, 0),
      });
    }
    return figures;
  },
};
