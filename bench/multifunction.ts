/**
 * Benchmark: multifunction bundles (a `prefill` function of L tokens and a one-token
 * `decode` function sharing one weight.bin per piece) against single-method bundles (one function
 * of L tokens) of the KJV model and the Llama-3.2-1B shape, fp16 c4w, on the CPU backend: prefill
 * and decode tok/s, and total bundle size. The CPU backend runs a single-method bundle's decode
 * steps as one-position calls too, so on it the two should decode alike; the multifunction
 * prefill returns only the last token's logits, which saves the head's work on every other row.
 *
 * @module
 */

import type { Bench, Figures } from "./bench.ts";
import { CpuBackend } from "../runtime/backend/cpu.ts";
import { LoadedModel } from "../runtime/model.ts";
import { type BenchModel, KJV, LLAMA32_1B_SHAPE } from "./bench_models.ts";
import { cachedBundle } from "./bundle_cache.ts";
import { generationSpeed } from "./generation_speed.ts";
import { round } from "./spread.ts";

/** One model's measurement plan. */
interface Case {
  readonly model: BenchModel;
  readonly promptTokens: number;
  readonly newTokens: number;
  readonly runs: number;
}

const CASES: readonly Case[] = [
  { model: KJV, promptTokens: 32, newTokens: 128, runs: 5 },
  { model: LLAMA32_1B_SHAPE, promptTokens: 128, newTokens: 128, runs: 3 },
];

/** Bytes of every file under `dir`. */
async function directoryBytes(dir: string): Promise<number> {
  let total = 0;
  for await (const entry of Deno.readDir(dir)) {
    const path = `${dir}/${entry.name}`;
    total += entry.isDirectory ? await directoryBytes(path) : (await Deno.stat(path)).size;
  }
  return total;
}

async function measureCase(cpu: CpuBackend, c: Case): Promise<Figures> {
  const prefix = `${c.model.key}_fp16_c4w`;
  const single = await cachedBundle(c.model);
  const multi = await cachedBundle(c.model, { multifunction: true });
  using singleModel = await LoadedModel.load(single, cpu);
  using multiModel = await LoadedModel.load(multi, cpu);
  const prompt = await c.model.prompt(c.promptTokens, singleModel.manifest.model.vocabSize);
  const speed = await generationSpeed([
    { prefix: `${prefix}_single`, model: singleModel },
    { prefix: `${prefix}_multifunction`, model: multiModel },
  ], { prompt, newTokens: c.newTokens, runs: c.runs });
  const ratio = (figure: string) =>
    round(
      (speed[`${prefix}_multifunction_${figure}`] as number) /
        (speed[`${prefix}_single_${figure}`] as number),
      2,
    );
  const singleBytes = await directoryBytes(single);
  const multiBytes = await directoryBytes(multi);
  return {
    [`${prefix}_input_len`]: singleModel.inputLength,
    [`${prefix}_prompt_tokens`]: prompt.length,
    [`${prefix}_new_tokens`]: c.newTokens,
    ...speed,
    [`${prefix}_multifunction_over_single_prefill`]: ratio("prefill_tok_s"),
    [`${prefix}_multifunction_over_single_decode`]: ratio("decode_tok_s"),
    [`${prefix}_single_bytes`]: singleBytes,
    [`${prefix}_multifunction_bytes`]: multiBytes,
    [`${prefix}_multifunction_over_single_bytes`]: round(multiBytes / singleBytes, 4),
  };
}

/** `multifunction` */
export const multifunction: Bench = {
  name: "multifunction",
  description: "multifunction (prefill L=32 + decode L=1, shared weights) vs single-method " +
    "(L=32) fp16 c4w bundles on the CPU backend: prefill and decode tok/s (greedy, median of " +
    "runs alternating between the two, after a warm-up) and total bundle bytes, for KJV " +
    "(32-token prompt, 128 new tokens) and the Llama-3.2-1B shape (128, 128)",
  async run() {
    const cpu = await CpuBackend.create();
    const figures: Figures = {};
    for (const c of CASES) Object.assign(figures, await measureCase(cpu, c));
    return figures;
  },
};
