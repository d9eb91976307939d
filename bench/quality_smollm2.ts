/**
 * Benchmarks: what each export option costs a real model. SmolLM2-135M-Instruct (the test fixture,
 * scripts/fixtures/smollm2/) reads a text teacher-forced, as `llamane eval` does; every bundle is
 * compared with the eager fp32 forward of the F32 GGUF on the same tokens: top-1 agreement, mean KL
 * divergence, cross-entropy delta. `quality_smollm2` reads the first 2,049 tokens of the held-out
 * KJV text (2,048 predictions, one sequence through the bundle's 992-token sliding window, which
 * keeps the first 4 tokens: most tokens no longer see the rest of the text's start);
 * `quality_smollm2_prose` the first 993 tokens of English prose, the first chapter of a 1919
 * translation of Natsume Soseki's Botchan (scripts/bench/make_prose_text.py: 992 predictions, each
 * seeing all the text before it). Beside llamane's options, llama.cpp's Q4_0 and Q8_0 of the same
 * weights (gguf-py's quantizer, scripts/bench/make_smollm2_peers.py) run as fp32 bundles of their
 * dequantized weights and as fp16 bundles that keep their blocks (`--linear_quantize keep -E
 * keep`), and so does an independent NumPy simulation of the absmax int4 scheme llamane's c4w used
 * before its scales were searched. Quantized bundles are scored twice: with the CPU's default int8
 * activations (what prefill computes), and in a child process with f32 activations (what decode
 * computes, and the closest the CPU comes to an fp16 engine): the weights' loss alone, as the
 * peers' fp32 figures are. The reference's logits are kept under out/bench/smollm2/ for later runs.
 *
 * @module
 */

import type { Bench, Figures } from "./bench.ts";
import { EagerLlama } from "../llama/forward.ts";
import { openModel } from "../llama/open.ts";
import { CpuBackend } from "../runtime/backend/cpu.ts";
import { evaluate } from "../runtime/evaluate.ts";
import { LoadedModel } from "../runtime/model.ts";
import { loadTokenizer } from "../tokenizer/load.ts";
import { type BundleOptions, cachedBundle, type ExportSource } from "./bundle_cache.ts";
import { RecordedReference } from "./recorded_reference.ts";
import { round } from "./spread.ts";

const ROOT = new URL("../", import.meta.url);
const FIXTURES = new URL("testdata/smollm2/", ROOT).pathname;
const PEERS = new URL("out/bench/smollm2/", ROOT).pathname;
const FP32: BundleOptions = { dtype: "fp32", linearQuantize: "none", embeddingQuantize: "none" };
/**
 * `-E 8,32`: the head in int8 blocks, as Q8_0 stores it. This model's GGUF ships its tied table in
 * Q8_0, so blocks of 32 hold it exactly and only the layers' own loss is left to compare.
 */
const BLOCK_HEAD = { bits: 8, groupSize: 32 } as const;
/** The GGUF's own blocks carried into an fp16 bundle. */
const KEEP: BundleOptions = { linearQuantize: "keep", embeddingQuantize: "keep" };

async function run(command: string, args: string[]): Promise<void> {
  const { success } = await new Deno.Command(command, {
    args,
    stdout: "inherit",
    stderr: "inherit",
  })
    .output();
  if (!success) {
    throw new Error(`Cannot prepare the benchmark: ${command} ${args.join(" ")} failed`);
  }
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, (error) => {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  });
}

/** The fixture's weights (made by the tests' script when missing). */
const SMOLLM2: ExportSource = {
  key: "smollm2",
  checkpoint: `${FIXTURES}f32.gguf`,
  ensure: () => run("bash", [new URL("scripts/fixtures/smollm2/make.sh", ROOT).pathname]),
};

/** A GGUF of scripts/bench/make_smollm2_peers.py, made with the others when missing. */
function peer(name: string): ExportSource {
  return {
    key: `smollm2_${name}`,
    checkpoint: `${PEERS}${name}.gguf`,
    async ensure() {
      await SMOLLM2.ensure();
      if (await exists(this.checkpoint)) return;
      const script = new URL("scripts/bench/make_smollm2_peers.py", ROOT).pathname;
      await run(new URL(".venv/bin/python", ROOT).pathname, [script]);
    },
  };
}

/** Every variant: a figure prefix, the weights and the export options. */
const VARIANTS: readonly { name: string; source: ExportSource; options: BundleOptions }[] = [
  { name: "fp32", source: SMOLLM2, options: FP32 },
  { name: "fp16", source: SMOLLM2, options: { linearQuantize: "none", embeddingQuantize: "none" } },
  { name: "c4w", source: SMOLLM2, options: { linearQuantize: "c4w" } },
  { name: "b4w", source: SMOLLM2, options: { linearQuantize: "b4w" } },
  { name: "lut4", source: SMOLLM2, options: { linearQuantize: "lut4" } },
  { name: "lut6", source: SMOLLM2, options: { linearQuantize: "lut6" } },
  { name: "c8w", source: SMOLLM2, options: { linearQuantize: "c8w" } },
  { name: "b8w", source: SMOLLM2, options: { linearQuantize: "b8w" } },
  {
    name: "c8w_e8_32",
    source: SMOLLM2,
    options: { linearQuantize: "c8w", embeddingQuantize: BLOCK_HEAD },
  },
  {
    name: "b8w_e8_32",
    source: SMOLLM2,
    options: { linearQuantize: "b8w", embeddingQuantize: BLOCK_HEAD },
  },
  { name: "llama_cpp_q4_0", source: peer("q4_0"), options: FP32 },
  { name: "llama_cpp_q8_0", source: peer("q8_0"), options: FP32 },
  { name: "keep_q4_0", source: peer("q4_0"), options: KEEP },
  { name: "keep_q8_0", source: peer("q8_0"), options: KEEP },
  { name: "absmax_c4w_numpy", source: peer("absmax_c4w"), options: FP32 },
];

/** Variants with quantized weights: they alone compute differently with f32 activations. */
const QUANTIZED = VARIANTS.filter(({ options }) => options.linearQuantize !== "none");

/** Argument that makes this module score {@link QUANTIZED} and print the figures as JSON. */
const CHILD_ARGUMENT = "score-quantized";

/** A text the variants read: its path in the repository, and how many of its tokens. */
interface ScoredText {
  readonly path: string;
  readonly tokens: number;
  /** What the text is, for the benchmark's description. */
  readonly about: string;
  /** Makes the text when missing. */
  readonly ensure: () => Promise<void>;
}

const KJV: ScoredText = {
  path: "testdata/kjv/heldout.txt",
  tokens: 2049,
  about: "the held-out KJV text (through the bundle's sliding window, keeping the first 4 tokens)",
  ensure: async () => {},
};

const PROSE: ScoredText = {
  path: "out/bench/prose/botchan.txt",
  tokens: 993,
  about: "English prose (Botchan, chapter I, in a 1919 translation; within one window)",
  async ensure() {
    if (await exists(new URL(this.path, ROOT).pathname)) return;
    const script = new URL("scripts/bench/make_prose_text.py", ROOT).pathname;
    await run(new URL(".venv/bin/python", ROOT).pathname, [script]);
  },
};

/** The texts by benchmark name. */
const TEXTS: Readonly<Record<string, ScoredText>> = {
  quality_smollm2: KJV,
  quality_smollm2_prose: PROSE,
};

async function gitCommit(): Promise<string> {
  const { stdout } = await new Deno.Command("git", {
    args: ["-C", ROOT.pathname, "rev-parse", "--short", "HEAD"],
    stdout: "piped",
  }).output();
  return new TextDecoder().decode(stdout).trim();
}

/**
 * Scores `variants` on the CPU backend of this process, each figure named `<variant><suffix>_...`.
 */
async function score(
  text: ScoredText,
  variants: typeof VARIANTS,
  suffix: string,
): Promise<Figures> {
  await SMOLLM2.ensure();
  await text.ensure();
  const tokenizer = await loadTokenizer(SMOLLM2.checkpoint);
  const content = await Deno.readTextFile(new URL(text.path, ROOT));
  const tokens = tokenizer.encode(content, { bos: tokenizer.addBos }).slice(0, text.tokens);
  using opened = await openModel({ checkpoint: SMOLLM2.checkpoint });
  const eager = await EagerLlama.load(opened.source, opened.config);
  const reference = new RecordedReference(eager, `${PEERS}reference`);
  const figures: Figures = {};
  const cpu = await CpuBackend.create();
  for (const { name: variant, source, options } of variants) {
    const name = `${variant}${suffix}`;
    const bundle = await cachedBundle(source, options);
    using model = await LoadedModel.load(bundle, cpu);
    const started = performance.now();
    const result = await evaluate(model, [tokens], {
      reference,
      onProgress: (scored, total) => {
        if (scored % 256 === 0 || scored === total) {
          const seconds = ((performance.now() - started) / 1000).toFixed(0);
          console.error(`  ${name}: ${scored}/${total} positions, ${seconds} s`);
        }
      },
    });
    const compared = result.reference!;
    Object.assign(figures, {
      positions: result.positions,
      reference_cross_entropy_nats: round(compared.crossEntropy, 4),
      [`${name}_top1_agreement`]: round(compared.top1Agreement, 4),
      [`${name}_mean_kl_nats`]: round(compared.meanKlDivergence, 5),
      [`${name}_cross_entropy_delta_nats`]: round(compared.crossEntropyDelta, 4),
      [`${name}_weight_bytes`]: model.manifest.pieces.reduce((a, p) => a + p.weightBytes, 0),
    });
    console.error(
      `  ${name}: top-1 ${figures[`${name}_top1_agreement`]}, KL ${
        figures[`${name}_mean_kl_nats`]
      }, delta ${figures[`${name}_cross_entropy_delta_nats`]}`,
    );
  }
  return figures;
}

/**
 * Scores {@link QUANTIZED} with f32 activations, in a child process: the native library reads
 * `LLAMANE_CPU_ACTIVATIONS` once per process.
 */
async function scoreWithF32Activations(name: string): Promise<Figures> {
  const { success, stdout } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL(import.meta.url).pathname, CHILD_ARGUMENT, name],
    env: { LLAMANE_CPU_ACTIVATIONS: "f32" },
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (!success) throw new Error("Scoring with f32 activations failed (its errors are above)");
  // The figures are the last line: the fixture scripts it may run print to stdout too.
  return JSON.parse(new TextDecoder().decode(stdout).trim().split("\n").at(-1)!);
}

/** The benchmark named `name`, which scores every variant on its text in {@link TEXTS}. */
function qualityBench(name: string): Bench {
  const text = TEXTS[name]!;
  return {
    name,
    description:
      "SmolLM2-135M-Instruct bundles (fp32, fp16, c4w, b4w, lut4, lut6, c8w, b8w; -E 8,0 for " +
      "the embedding and head where quantized, -E 8,32 in *_e8_32) and llama.cpp's Q4_0 and " +
      "Q8_0 of the same weights (as fp32 bundles of their dequantized weights, and as fp16 " +
      `bundles keeping their blocks, keep_*), teacher-forced over ${
        text.tokens - 1
      } positions of ${text.about} on the CPU ` +
      "backend against the eager fp32 forward: top-1 agreement, mean KL divergence (nats), " +
      "cross-entropy delta (nats), with the CPU's default int8 activations and, for quantized " +
      "weights, again with f32 activations (*_f32_activations_*: the weights' own loss, as " +
      "decode and fp16 engines compute); absmax_c4w_numpy is a NumPy simulation of c4w before " +
      "searched scales (one absmax scale per row, a c4w head), run in fp32",
    async run() {
      return {
        commit: await gitCommit(),
        text: text.path,
        ...await score(text, VARIANTS, ""),
        ...await scoreWithF32Activations(name),
      };
    },
  };
}

/** `quality_smollm2` */
export const qualitySmollm2 = qualityBench("quality_smollm2");

/** `quality_smollm2_prose` */
export const qualitySmollm2Prose = qualityBench("quality_smollm2_prose");

if (import.meta.main && Deno.args[0] === CHILD_ARGUMENT) {
  const text = TEXTS[Deno.args[1]!];
  if (text === undefined) throw new Error(`No quality benchmark is named "${Deno.args[1]}"`);
  console.log(JSON.stringify(await score(text, QUANTIZED, "_f32_activations")));
}
