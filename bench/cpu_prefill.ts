/**
 * Benchmark: the CPU backend's prefill and decode against llama.cpp's, side by side in one run, on
 * the Llama-3.2-1B shape (llamane fp16 c4w, llama.cpp pure Q4_0 of the same checkpoint), the same
 * prompt length, with 2 threads and with 1. Each figure comes from fresh processes pinned with
 * taskset to the cores it may use (llamane's thread pool takes one thread per core it may use;
 * llama.cpp is told its thread count too), the two engines taking turns run by run so that a
 * change in the machine's load falls on both. The kernel set and the CPU flags are recorded, and
 * llamane's other integer kernel sets that the CPU can run are timed too (forced with
 * `LLAMANE_CPU_KERNELS`, 2 threads), so that one machine shows what each instruction set gives.
 *
 * @module
 */

import type { Bench, Figures } from "./bench.ts";
import { LLAMA32_1B_SHAPE } from "./bench_models.ts";
import { cachedBundle } from "./bundle_cache.ts";
import { probe, shape1bQ4Gguf, type SpeedRun } from "./llama_cpp.ts";
import { LoadSampler, median, round, spread } from "./spread.ts";
import { ensurePeer } from "../testing/llama_cpp_peer.ts";

const PROMPT_TOKENS = 128;
const NEW_TOKENS = 64;
const RUNS = 3;
/** The cores of the 2-thread runs, those of the other kernel sets included. */
const TWO_CORES = "0,1";
/** Threads, and the cores (taskset's list) each engine runs on. */
const THREADS: readonly [number, string][] = [[2, TWO_CORES], [1, "0"]];
const PROBE = new URL("./cpu_prefill_probe.ts", import.meta.url);
/** Kernel sets timed beside the selected one when this CPU can run them, best first. */
const OTHER_KERNELS = ["avx512", "avxvnni", "avx2"];

/** Said by the native library when `LLAMANE_CPU_KERNELS` names a set this CPU lacks. */
const UNAVAILABLE_KERNELS = "names no kernel set this CPU can run";

/**
 * One llamane process's median prefill and decode tok/s, and its kernel set: the selected one, or
 * `kernels` if given.
 */
async function llamaneRun(bundle: string, cpus: string, kernels?: string): Promise<Figures> {
  const { success, stdout, stderr } = await new Deno.Command("taskset", {
    args: [
      "-c",
      cpus,
      Deno.execPath(),
      "run",
      "--allow-read",
      "--allow-env",
      "--allow-ffi",
      "--allow-run=uptime",
      PROBE.pathname,
      bundle,
      String(PROMPT_TOKENS),
      String(NEW_TOKENS),
      "1",
    ],
    env: kernels === undefined ? {} : { LLAMANE_CPU_KERNELS: kernels },
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!success) {
    throw new Error(`cpu_prefill_probe.ts failed:\n${new TextDecoder().decode(stderr)}`);
  }
  return JSON.parse(new TextDecoder().decode(stdout));
}

/** Median prefill and decode of each other kernel set this CPU can run, with 2 threads. */
async function otherKernels(bundle: string, selected: string): Promise<Figures> {
  const figures: Figures = {};
  for (const kernels of OTHER_KERNELS.filter((k) => k !== selected)) {
    const runs: Figures[] = [];
    try {
      for (let i = 0; i < RUNS; i++) {
        runs.push(await llamaneRun(bundle, TWO_CORES, kernels));
      }
    } catch (error) {
      if (String(error).includes(UNAVAILABLE_KERNELS)) continue;
      throw error;
    }
    Object.assign(figures, {
      ...spread(
        `llamane_${kernels}_2t_prefill_tok_s`,
        runs.map((f) => f.llamane_prefill_tok_s as number),
      ),
      ...spread(
        `llamane_${kernels}_2t_decode_tok_s`,
        runs.map((f) => f.llamane_decode_tok_s as number),
      ),
    });
  }
  return figures;
}

/** `cpu_prefill` */
export const cpuPrefill: Bench = {
  name: "cpu_prefill",
  description: "CPU backend vs llama.cpp (node-llama-cpp prebuilt CPU binaries) on the " +
    `Llama-3.2-1B shape, llamane fp16 c4w vs llama.cpp pure Q4_0: prefill of a ${PROMPT_TOKENS}-` +
    `token prompt and ${NEW_TOKENS} greedy decode steps, tok/s, with 2 threads and 1 (processes ` +
    `pinned with taskset), median of ${RUNS} fresh processes each, the engines taking turns`,
  async run() {
    if (Deno.build.os !== "linux" || Deno.build.arch !== "x86_64") {
      return { skipped: "the peer pins node-llama-cpp's linux-x64 CPU binaries only" };
    }
    await ensurePeer();
    const gguf = await shape1bQ4Gguf();
    const bundle = await cachedBundle(LLAMA32_1B_SHAPE);
    const figures: Figures = { prompt_tokens: PROMPT_TOKENS, decode_tokens: NEW_TOKENS };
    for (const [threads, cpus] of THREADS) {
      const load = new LoadSampler();
      const ours: Figures[] = [];
      const theirs: SpeedRun[] = [];
      for (let i = 0; i < RUNS; i++) {
        await load.sample();
        ours.push(await llamaneRun(bundle, cpus));
        theirs.push(
          await probe<SpeedRun>(
            [
              "speed",
              `--model=${gguf}`,
              `--prompt-tokens=${PROMPT_TOKENS}`,
              `--decode-tokens=${NEW_TOKENS}`,
            ],
            threads,
            cpus,
          ),
        );
      }
      const k = `${threads}t`;
      const prefill = ours.map((f) => f.llamane_prefill_tok_s as number);
      const decode = ours.map((f) => f.llamane_decode_tok_s as number);
      const peerPrefill = theirs.map((r) => r.prefill_tok_s);
      const peerDecode = theirs.map((r) => r.decode_tok_s);
      Object.assign(figures, {
        llamane_kernels: ours[0]!.kernels as string,
        ...spread(`llamane_${k}_prefill_tok_s`, prefill),
        ...spread(`llama_cpp_${k}_prefill_tok_s`, peerPrefill),
        ...spread(`llamane_${k}_decode_tok_s`, decode),
        ...spread(`llama_cpp_${k}_decode_tok_s`, peerDecode),
        [`${k}_prefill_ratio`]: round(median(prefill) / median(peerPrefill), 2),
        [`${k}_decode_ratio`]: round(median(decode) / median(peerDecode), 2),
        ...load.figures(k),
      });
      figures.llama_cpp_system_info = theirs[0]!.system_info;
    }
    return { ...figures, ...await otherKernels(bundle, figures.llamane_kernels as string) };
  },
};
