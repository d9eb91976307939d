/**
 * One process of the `cpu_prefill` bench: loads a bundle on the CPU backend and prints the JSON
 * figures of `generationSpeed` for a prompt of the given length. Run pinned to a set of cores
 * (taskset), the native thread pool takes one thread per core it may use.
 *
 * Usage: cpu_prefill_probe.ts BUNDLE PROMPT_TOKENS NEW_TOKENS RUNS
 *
 * @module
 */

import { CpuBackend } from "../runtime/backend/cpu.ts";
import { LoadedModel } from "../runtime/model.ts";
import { LLAMA32_1B_SHAPE } from "./bench_models.ts";
import { generationSpeed } from "./generation_speed.ts";

const [bundle, promptTokens, newTokens, runs] = Deno.args;
using cpu = await CpuBackend.create();
using model = await LoadedModel.load(bundle!, cpu);
const prompt = await LLAMA32_1B_SHAPE.prompt(Number(promptTokens), model.manifest.model.vocabSize);
const figures = await generationSpeed([{ prefix: "llamane", model }], {
  prompt,
  newTokens: Number(newTokens),
  runs: Number(runs),
});
console.log(JSON.stringify({ ...figures, kernels: cpu.kernels ?? "none" }));
