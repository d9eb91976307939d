/**
 * Benchmark: the performance peer, llama.cpp (npm `node-llama-cpp`, pinned in
 * `bench/peer/package-lock.json`, prebuilt CPU binaries, 2 threads and 1), on the embedded KJV model
 * (F16 and Q4_0) and on the Llama-3.2-1B-shaped random checkpoint (Q4_0): model load, prefill and
 * decode speed, each the median of fresh Node processes. It also records a correctness check of the GGUF
 * conversion: llama.cpp's greedy continuation of "And God said" from the KJV model (F16), and how
 * many of its tokens the PyTorch reference forward (scripts/oracle/) decodes identically.
 *
 * Everything it needs is made on first use and cached under `out/bench/` (git-ignored):
 * `npm ci` into `bench/peer/node_modules` (no optional packages, so no CUDA or Vulkan builds; no
 * install scripts, so node-llama-cpp's postinstall never tries a download or a source build), the
 * venv of `scripts/gguf/setup_venv.sh`, and the GGUF files of `scripts/gguf/convert.py`, remade
 * when their checkpoint or the converter is newer.
 *
 * @module
 */

import type { Bench, Figures } from "./bench.ts";
import { LLAMA32_1B_SHAPE, SHAPE_1B } from "./bench_models.ts";
import { median, round, spread } from "./spread.ts";
import { ensurePeer } from "../testing/llama_cpp_peer.ts";

const ROOT = new URL("../", import.meta.url);
const PEER = new URL("bench/peer/", ROOT);
const PROBE = new URL("probe.mjs", PEER).pathname;
const CACHE = new URL("out/bench/llama_cpp/", ROOT);
const SETUP_VENV = new URL("scripts/gguf/setup_venv.sh", ROOT).pathname;
const CONVERTER = new URL("scripts/gguf/convert.py", ROOT).pathname;
const TORCH_GREEDY = new URL("scripts/gguf/torch_greedy.py", ROOT).pathname;
const KJV = new URL("models/kjv-tiny/", ROOT);
const TORCH_PYTHON = Deno.env.get("LLAMANE_TORCH_PYTHON") ?? "/usr/bin/python3";
const RUNS = 3;
/**
 * Thread counts timed. 2 is the machine's core count and the setting compared against; 1 as well,
 * because ggml's threads meet at a barrier after every op: while anything else holds one of the 2
 * shared cores, each op waits for a scheduler slice and 2-thread figures collapse (the KJV model's
 * decode fell from about 1,500 to 15-35 tok/s here), where 1 thread only loses that core.
 */
const THREAD_COUNTS = [2, 1];
const DECODE_TOKENS = 128;
const GREEDY_PROMPT = "And God said";
const GREEDY_TOKENS = 32;

/** A Meta-layout checkpoint, how to convert it, and how to time it. */
interface Model {
  /** Figure-name prefix and GGUF file stem. */
  readonly key: string;
  readonly dir: URL;
  readonly tokenizer: boolean;
  readonly outtype: "f16" | "q4_0";
  /** llama.context_length: what the model was trained for (params.json does not say). */
  readonly contextLength: number;
  /** RoPE scale factor for `use_scaled_rope` checkpoints. */
  readonly ropeScaleFactor?: number;
  readonly promptTokens: number;
}

const KJV_F16: Model = {
  key: "kjv_f16",
  dir: KJV,
  tokenizer: true,
  outtype: "f16",
  // scripts/kjv/train.py trains on windows of 256 tokens.
  contextLength: 256,
  promptTokens: 128,
};
const SHAPE_1B_Q4_0: Model = {
  key: "llama32_1b_shape_q4_0",
  dir: SHAPE_1B,
  tokenizer: false,
  outtype: "q4_0",
  contextLength: 131072,
  ropeScaleFactor: LLAMA32_1B_SHAPE.ropeScaleFactor,
  promptTokens: 512,
};
const MODELS: readonly Model[] = [
  KJV_F16,
  { ...KJV_F16, key: "kjv_q4_0", outtype: "q4_0" },
  SHAPE_1B_Q4_0,
];

/** The Q4_0 GGUF of the Llama-3.2-1B-shaped checkpoint, converted (and cached) when missing. */
export async function shape1bQ4Gguf(): Promise<string> {
  await LLAMA32_1B_SHAPE.ensure();
  return ensureGguf(SHAPE_1B_Q4_0, await ensureVenv());
}

/** The timings one probe process prints (bench/peer/probe.mjs, mode "speed"). */
export interface SpeedRun {
  readonly node_llama_cpp: string;
  readonly llama_cpp_release: string;
  readonly build_type: string;
  readonly system_info: string;
  readonly load_average_1m: number;
  readonly context_size: number;
  readonly flash_attention: string;
  readonly model_bytes: number;
  readonly binary_load_ms: number;
  readonly model_load_ms: number;
  readonly prompt_tokens: number;
  readonly prefill_tok_s: number;
  readonly decode_tokens: number;
  readonly decode_tok_s: number;
}

/** What the probe prints in mode "greedy". */
interface GreedyRun {
  readonly prompt_tokens: number[];
  readonly tokens: number[];
  readonly text: string;
  readonly eos: number | null;
}

/** Runs a command to completion, returning its stdout; its stderr passes through. */
async function run(command: string, args: string[], cwd?: URL): Promise<string> {
  const output = await new Deno.Command(command, {
    args,
    ...(cwd === undefined ? {} : { cwd }),
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (!output.success) {
    throw new Error(`${command} ${args.join(" ")} failed with exit code ${output.code}`);
  }
  return new TextDecoder().decode(output.stdout);
}

async function mtime(path: string): Promise<number | undefined> {
  try {
    return (await Deno.stat(path)).mtime?.getTime() ?? 0;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

/** The venv python that has torch and gguf (made by scripts/gguf/setup_venv.sh). */
async function ensureVenv(): Promise<string> {
  const lines = (await run("bash", [SETUP_VENV])).trim().split("\n");
  return lines[lines.length - 1]!;
}

/** The model's GGUF, converted unless a cached one is newer than all its inputs. */
async function ensureGguf(model: Model, python: string): Promise<string> {
  const output = new URL(`${model.key}.gguf`, CACHE).pathname;
  const checkpoint = new URL("consolidated.00.pth", model.dir).pathname;
  const params = new URL("params.json", model.dir).pathname;
  const tokenizer = model.tokenizer ? new URL("tokenizer.model", model.dir).pathname : undefined;
  const inputs = [checkpoint, params, ...(tokenizer === undefined ? [] : [tokenizer]), CONVERTER];
  const times = await Promise.all(inputs.map(mtime));
  const missing = inputs.find((_, i) => times[i] === undefined);
  if (missing !== undefined) throw new Error(`Cannot convert ${model.key}: no ${missing}`);
  const built = await mtime(output);
  if (built !== undefined && times.every((t) => t! < built)) return output;
  await Deno.mkdir(CACHE, { recursive: true });
  console.log(`converting ${model.key} to GGUF (${model.outtype})`);
  const summary = await run(python, [
    CONVERTER,
    `--checkpoint=${checkpoint}`,
    `--params=${params}`,
    ...(tokenizer === undefined ? [] : [`--tokenizer=${tokenizer}`]),
    `--outtype=${model.outtype}`,
    `--context-length=${model.contextLength}`,
    ...(model.ropeScaleFactor === undefined
      ? []
      : [`--rope-scale-factor=${model.ropeScaleFactor}`]),
    `--output=${output}`,
  ]);
  console.log(summary.trim());
  return output;
}

/**
 * Runs bench/peer/probe.mjs with `threads` threads; with `cpus` (taskset's list, e.g. `0`), only
 * on those cores.
 */
export async function probe<T>(args: string[], threads: number, cpus?: string): Promise<T> {
  const node = ["node", PROBE, ...args, `--threads=${threads}`];
  const [command, ...rest] = cpus === undefined ? node : ["taskset", "-c", cpus, ...node];
  return JSON.parse(await run(command!, rest, PEER)) as T;
}

async function measure(model: Model, gguf: string): Promise<[Figures, SpeedRun[]]> {
  const all: SpeedRun[] = [];
  const figures: Figures = {};
  for (const threads of THREAD_COUNTS) {
    const runs: SpeedRun[] = [];
    for (let i = 0; i < RUNS; i++) {
      const args = [
        "speed",
        `--model=${gguf}`,
        `--prompt-tokens=${model.promptTokens}`,
        `--decode-tokens=${DECODE_TOKENS}`,
      ];
      runs.push(await probe<SpeedRun>(args, threads));
    }
    const k = `${model.key}_${threads}t`;
    Object.assign(figures, {
      ...spread(`${k}_prefill_tok_s`, runs.map((r) => r.prefill_tok_s)),
      ...spread(`${k}_decode_tok_s`, runs.map((r) => r.decode_tok_s)),
      ...spread(`${k}_model_load_ms`, runs.map((r) => r.model_load_ms)),
      [`${k}_binary_load_ms`]: round(median(runs.map((r) => r.binary_load_ms))),
    });
    all.push(...runs);
  }
  const first = all[0]!;
  return [{
    [`${model.key}_gguf_mb`]: round(first.model_bytes / 2 ** 20),
    [`${model.key}_prompt_tokens`]: first.prompt_tokens,
    [`${model.key}_decode_tokens`]: first.decode_tokens,
    [`${model.key}_context_size`]: first.context_size,
    ...figures,
  }, all];
}

/** llama.cpp's greedy KJV continuation, and how far PyTorch's reference agrees with it. */
async function greedyCheck(gguf: string): Promise<Figures> {
  const llama = await probe<GreedyRun>([
    "greedy",
    `--model=${gguf}`,
    `--prompt=${GREEDY_PROMPT}`,
    `--new-tokens=${GREEDY_TOKENS}`,
  ], 1);
  const reference: number[] = JSON.parse(
    await run(TORCH_PYTHON, [
      TORCH_GREEDY,
      `--checkpoint=${new URL("consolidated.00.pth", KJV).pathname}`,
      `--params=${new URL("params.json", KJV).pathname}`,
      `--tokens=${JSON.stringify(llama.prompt_tokens)}`,
      `--new-tokens=${GREEDY_TOKENS}`,
      ...(llama.eos === null ? [] : [`--stop-token=${llama.eos}`]),
    ]),
  );
  let agree = 0;
  while (agree < llama.tokens.length && llama.tokens[agree] === reference[agree]) agree++;
  return {
    kjv_greedy_prompt: GREEDY_PROMPT,
    kjv_greedy_text: llama.text,
    kjv_greedy_tokens: JSON.stringify(llama.tokens),
    kjv_greedy_pytorch_tokens: JSON.stringify(reference),
    kjv_greedy_same_as_pytorch: `${agree} of ${Math.max(llama.tokens.length, reference.length)}`,
  };
}

/** llama.cpp's speed on the KJV model and the Llama-3.2-1B shape, and the KJV greedy check. */
export const llamaCpp: Bench = {
  name: "llama_cpp",
  description: "llama.cpp peer (node-llama-cpp prebuilt CPU binaries, " +
    `${THREAD_COUNTS.join(" and ")} threads): model load, prefill and decode (${DECODE_TOKENS} ` +
    "greedy steps) tok/s on the KJV model (F16, Q4_0; 128-token prompt) and the Llama-3.2-1B " +
    `shape (pure Q4_0; 512-token prompt), median of ${RUNS} fresh processes; plus the KJV F16 ` +
    `greedy continuation of "${GREEDY_PROMPT}" checked against the PyTorch reference`,
  async run() {
    if (Deno.build.os !== "linux" || Deno.build.arch !== "x86_64") {
      return { skipped: "the peer pins node-llama-cpp's linux-x64 CPU binaries only" };
    }
    await ensurePeer();
    const python = await ensureVenv();
    await LLAMA32_1B_SHAPE.ensure();
    const ggufs = [];
    for (const model of MODELS) ggufs.push(await ensureGguf(model, python));

    const figures: Figures = await greedyCheck(ggufs[0]!);
    const runs: SpeedRun[] = [];
    for (const [i, model] of MODELS.entries()) {
      const [measured, modelRuns] = await measure(model, ggufs[i]!);
      Object.assign(figures, measured);
      runs.push(...modelRuns);
    }
    const build = runs[0]!;
    const loads = runs.map((r) => r.load_average_1m);
    return {
      node_llama_cpp: build.node_llama_cpp,
      llama_cpp_release: build.llama_cpp_release,
      build_type: build.build_type,
      system_info: build.system_info.trim(),
      flash_attention: build.flash_attention,
      load_average_1m_min: Math.min(...loads),
      load_average_1m_max: Math.max(...loads),
      ...figures,
    };
  },
};
