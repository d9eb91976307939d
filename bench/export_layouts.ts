/**
 * Benchmark: `llamane export` of the Llama-3.2-1B-shaped checkpoint from the two other layouts,
 * with the default options, each in a fresh process as bench `export_model` does for the .pth:
 * a Hugging Face folder (bf16, two shards; made from the .pth by
 * `scripts/bench/make_llama32_1b_hf.py`) and the Q4_0 GGUF the llama.cpp peer runs (made by
 * `scripts/gguf/convert.py`), both cached under `out/bench/`. Targets as for the .pth: <= 60 s,
 * <= 2 GB peak RSS.
 *
 * @module
 */

import type { Bench, Figures } from "./bench.ts";
import { LLAMA32_1B_SHAPE } from "./bench_models.ts";
import { medians, runProbe } from "./export_model.ts";
import { shape1bQ4Gguf } from "./llama_cpp.ts";
import { hasGnuTime } from "./timed_child.ts";

const ROOT = new URL("../", import.meta.url);
const HF_FOLDER = new URL("out/bench/llama32-1b-hf", ROOT).pathname;
const HF_CONVERTER = new URL("scripts/bench/make_llama32_1b_hf.py", ROOT).pathname;
const RUNS = 3;

/** The Hugging Face folder of the 1B-shaped checkpoint, converted from the .pth when missing. */
async function hfFolder(): Promise<string> {
  await LLAMA32_1B_SHAPE.ensure();
  const python = Deno.env.get("LLAMANE_TORCH_PYTHON") ?? "/usr/bin/python3";
  const { success } = await new Deno.Command(python, {
    args: [HF_CONVERTER, LLAMA32_1B_SHAPE.checkpoint, LLAMA32_1B_SHAPE.params, HF_FOLDER],
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (!success) throw new Error(`Cannot convert the benchmark checkpoint: ${HF_CONVERTER} failed`);
  return HF_FOLDER;
}

async function folderBytes(path: string): Promise<number> {
  let total = 0;
  for await (const entry of Deno.readDir(path)) {
    if (entry.isFile) total += (await Deno.stat(`${path}/${entry.name}`)).size;
  }
  return total;
}

async function exportRuns(checkpoint: string, gnuTime: boolean, prefix: string): Promise<Figures> {
  const runs: Figures[] = [];
  for (let i = 0; i < RUNS; i++) {
    runs.push(await runProbe("export", checkpoint, undefined, gnuTime));
  }
  return {
    ...medians(runs, prefix),
    [`${prefix}peak_rss_mb_max`]: typeof runs[0]!.peak_rss_mb === "number"
      ? Math.max(...runs.map((run) => Number(run.peak_rss_mb)))
      : runs[0]!.peak_rss_mb!,
  };
}

/** Default exports of the 1B shape from a Hugging Face folder and from a Q4_0 GGUF. */
export const exportLayoutsBench: Bench = {
  name: "export_layouts",
  description: "llamane export of the Llama-3.2-1B shape from a Hugging Face folder (bf16, 2 " +
    "shards) and from a Q4_0 GGUF, default options, each in a fresh process (median of " +
    `${RUNS}); targets <= 60 s, <= 2 GB peak RSS`,
  async run() {
    const gnuTime = await hasGnuTime();
    const folder = await hfFolder();
    const gguf = await shape1bQ4Gguf();
    return {
      hf_bytes: await folderBytes(folder),
      ...await exportRuns(folder, gnuTime, "hf_"),
      gguf_q4_0_bytes: (await Deno.stat(gguf)).size,
      ...await exportRuns(gguf, gnuTime, "gguf_q4_0_"),
    };
  },
};
