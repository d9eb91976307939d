/**
 * Benchmark: the CPU backend's prefill and decode speed on the KJV model and the
 * Llama-3.2-1B shape (fp16 activations, c4w linears: the export defaults; and the 1B shape with
 * lut4 linears, palettes of 16 values, beside it), set against this machine's memory-read
 * bandwidth. Decode reads every weight once per token, so weight bytes per
 * token over bandwidth is the fastest it can go; the bench reports decode as a fraction of that
 * bound. (The KJV model's 0.9 MB of weights stay in the CPU's caches, so it can beat a bound made
 * from main-memory bandwidth; the 1B's 620 MB cannot.) It also decodes with every call padded to
 * the bundle's full input length, as a fixed-shape engine (Core ML) must, to show what the CPU
 * backend's one-position decode calls save.
 *
 * @module
 */

import type { Bench, Figures } from "./bench.ts";
import type { Backend } from "../runtime/backend/backend.ts";
import { CpuBackend } from "../runtime/backend/cpu.ts";
import { LoadedModel } from "../runtime/model.ts";
import { type BenchModel, KJV, LLAMA32_1B_SHAPE } from "./bench_models.ts";
import { type BundleOptions, cachedBundle } from "./bundle_cache.ts";
import { decodeWeightBytes } from "./decode_bytes.ts";
import { generationSpeed } from "./generation_speed.ts";
import { measureBandwidth } from "./memory_bandwidth.ts";
import { LoadSampler, median, round, spread } from "./spread.ts";

const BANDWIDTH_RUNS = 10;

/** One model's measurement plan. */
interface Case {
  readonly model: BenchModel;
  /** Export options other than the defaults. */
  readonly options?: BundleOptions;
  readonly prefix: string;
  readonly promptTokens: number;
  readonly newTokens: number;
  readonly runs: number;
  /** Padded decode, where it is measured: its new tokens per run (padded decode of the 1B costs
   * seconds per token) and runs. */
  readonly padded?: { readonly newTokens: number; readonly runs: number };
}

const CASES: readonly Case[] = [
  {
    model: KJV,
    prefix: "kjv_fp16_c4w",
    promptTokens: 32,
    newTokens: 128,
    runs: 5,
    padded: { newTokens: 128, runs: 5 },
  },
  {
    model: LLAMA32_1B_SHAPE,
    prefix: "llama32_1b_fp16_c4w",
    promptTokens: 128,
    newTokens: 128,
    runs: 3,
    padded: { newTokens: 8, runs: 3 },
  },
  {
    model: LLAMA32_1B_SHAPE,
    options: { linearQuantize: "lut4" },
    prefix: "llama32_1b_fp16_lut4",
    promptTokens: 128,
    newTokens: 128,
    runs: 3,
  },
];

/** The CPU backend made to run only the exported call length, as Core ML does: calls are padded. */
function fixedLength(cpu: CpuBackend): Backend {
  return {
    name: "cpu (fixed length)",
    flexibleCallLength: false,
    load: (dir, piece, fn) => cpu.load(dir, piece, fn),
    [Symbol.dispose]() {},
  };
}

/** A case's figures, and what its decode bound needs: decode speed and weight bytes per token. */
interface Measured {
  readonly figures: Figures;
  readonly decodeTokS: number;
  readonly bytesPerToken: number;
}

async function measureCase(cpu: CpuBackend, c: Case): Promise<Measured> {
  const bundle = await cachedBundle(c.model, c.options);
  const bytes = await decodeWeightBytes(bundle);
  const figures: Figures = {};
  let decode: number;
  let prompt: number[];
  {
    using model = await LoadedModel.load(bundle, cpu);
    prompt = await c.model.prompt(c.promptTokens, model.manifest.model.vocabSize);
    Object.assign(figures, {
      [`${c.prefix}_input_len`]: model.inputLength,
      [`${c.prefix}_prompt_tokens`]: prompt.length,
      [`${c.prefix}_new_tokens`]: c.newTokens,
      ...await generationSpeed([{ prefix: c.prefix, model }], {
        prompt,
        newTokens: c.newTokens,
        runs: c.runs,
      }),
    });
    decode = figures[`${c.prefix}_decode_tok_s`] as number;
  }
  figures[`${c.prefix}_weight_bytes_per_token`] = bytes.total;
  for (const [piece, n] of Object.entries(bytes.byPiece)) {
    figures[`${c.prefix}_${piece}_bytes_per_token`] = n;
  }
  if (c.padded !== undefined) {
    using padded = await LoadedModel.load(bundle, fixedLength(cpu));
    const paddedPrefix = `${c.prefix}_padded`;
    const paddedFigures = await generationSpeed([{ prefix: paddedPrefix, model: padded }], {
      prompt,
      newTokens: c.padded.newTokens,
      runs: c.padded.runs,
      prefill: false,
    });
    const paddedDecode = paddedFigures[`${paddedPrefix}_decode_tok_s`] as number;
    Object.assign(figures, {
      [`${paddedPrefix}_new_tokens`]: c.padded.newTokens,
      ...paddedFigures,
      [`${c.prefix}_flexible_over_padded_decode`]: round(decode / paddedDecode, 2),
    });
  }
  return { figures, decodeTokS: decode, bytesPerToken: bytes.total };
}

/** `run_cpu` */
export const runCpu: Bench = {
  name: "run_cpu",
  description: "CPU backend prefill and decode tok/s (greedy, median of runs after a warm-up) of " +
    "fp16 c4w bundles: KJV (32-token prompt, 128 new tokens) and the Llama-3.2-1B shape (128, " +
    "128), and the 1B shape as an fp16 lut4 bundle (the same, no padded decode); memory-read " +
    `bandwidth (ffi/cpu/examples/bandwidth.rs, 1 GiB, ${BANDWIDTH_RUNS} ` +
    "passes before the models and as many after, since it drifts on a shared machine) and the " +
    "decode bound its median implies (weight bytes a decode token reads, counted from the " +
    "bundle, over bandwidth); and decode with every call padded to the " +
    "input length (a fixed-length backend, as Core ML runs) against one-position calls",
  async run() {
    const load = new LoadSampler();
    await load.sample();
    const all = await measureBandwidth(BANDWIDTH_RUNS);
    await load.sample();
    const one = await measureBandwidth(BANDWIDTH_RUNS, 1);
    const cpu = await CpuBackend.create();
    const measured = [];
    for (const c of CASES) measured.push(await measureCase(cpu, c));
    await load.sample();
    const after = await measureBandwidth(BANDWIDTH_RUNS);
    const passes = [...all.gb_s, ...after.gb_s];
    const bandwidth = median(passes);
    const figures: Figures = {
      memory_read_bytes: all.bytes,
      memory_read_threads: all.threads,
      ...spread("memory_read_gb_s", passes, 2),
      ...spread("memory_read_before_gb_s", all.gb_s, 2),
      ...spread("memory_read_after_gb_s", after.gb_s, 2),
      ...spread("memory_read_1t_gb_s", one.gb_s, 2),
      ...load.figures("memory_read"),
    };
    for (const [i, c] of CASES.entries()) {
      const { figures: caseFigures, decodeTokS, bytesPerToken } = measured[i]!;
      const bound = bandwidth * 1e9 / bytesPerToken;
      Object.assign(figures, caseFigures, {
        [`${c.prefix}_decode_bound_tok_s`]: round(bound),
        [`${c.prefix}_decode_fraction_of_bound`]: round(decodeTokS / bound, 3),
      });
    }
    return figures;
  },
};
