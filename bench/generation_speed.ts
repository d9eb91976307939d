/**
 * Prefill and decode speed of a loaded bundle, measured through the same path `llamane run` takes
 * (`generateTokens`, greedy, a fresh cache per run) and computed as its stats line does: prefill
 * tok/s is prompt tokens over the prefill time; decode tok/s is the tokens after the first (which
 * the prefill's logits give) over the decode time.
 *
 * @module
 */

import type { Figures } from "./bench.ts";
import { generateTokens } from "../runtime/generate.ts";
import { emptyGenerationStats, type GenerationStats } from "../runtime/generation_stats.ts";
import type { LoadedModel } from "../runtime/model.ts";
import { ModelSession } from "../runtime/session.ts";
import { LoadSampler, spread } from "./spread.ts";

/** A bundle to time, and the prefix of its figures (e.g. `kjv_fp16_c4w`). */
export interface SpeedVariant {
  readonly prefix: string;
  readonly model: LoadedModel;
}

/** What to time. */
export interface SpeedOptions {
  readonly prompt: readonly number[];
  /** New tokens per run; no stop tokens, so every run makes exactly this many. */
  readonly newTokens: number;
  readonly runs: number;
  /** Time the prefill too (off when only the decode of a variant is of interest). */
  readonly prefill?: boolean;
}

/** Runs one greedy generation and returns its stats. */
async function greedyRun(
  model: LoadedModel,
  prompt: readonly number[],
  newTokens: number,
): Promise<GenerationStats> {
  const stats = emptyGenerationStats();
  const options = { temperature: 0, maxNewTokens: newTokens, stopTokens: [] };
  // Only the stats matter: the tokens are drained as they come.
  for await (const _ of generateTokens(new ModelSession(model), prompt, options, stats));
  return stats;
}

/**
 * Median (min, max) prefill and decode tok/s of each variant over `runs` generations, after an
 * untimed short one that compiles the backend's plans for every call length the timed runs use.
 * The variants take turns run by run, so that a change in the machine's load falls on all alike.
 */
export async function generationSpeed(
  variants: readonly SpeedVariant[],
  options: SpeedOptions,
): Promise<Figures> {
  const { prompt, newTokens, runs } = options;
  for (const { model } of variants) await greedyRun(model, prompt, 2);
  const load = variants.map(() => new LoadSampler());
  const prefill: number[][] = variants.map(() => []);
  const decode: number[][] = variants.map(() => []);
  for (let run = 0; run < runs; run++) {
    for (const [i, { model }] of variants.entries()) {
      await load[i]!.sample();
      const stats = await greedyRun(model, prompt, newTokens);
      prefill[i]!.push(stats.promptTokens / stats.prefillSeconds);
      decode[i]!.push((stats.generatedTokens - 1) / stats.decodeSeconds);
    }
  }
  const figures: Figures = {};
  for (const [i, { prefix }] of variants.entries()) {
    Object.assign(
      figures,
      options.prefill === false ? {} : spread(`${prefix}_prefill_tok_s`, prefill[i]!),
      spread(`${prefix}_decode_tok_s`, decode[i]!),
      load[i]!.figures(prefix),
    );
  }
  return figures;
}
