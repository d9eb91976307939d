/**
 * `llamane run`: generate text from a bundle, streaming it as it comes, then a stats line.
 *
 * @module
 */

import { parseCommandLine, parseInteger, parseNumber, UsageError } from "./args.ts";
import type { Command } from "./command.ts";
import { openCheckpoint } from "../checkpoint/mod.ts";
import { EagerLlama } from "../llama/forward.ts";
import { readManifest } from "../bundle/manifest.ts";
import { readNeed, requirePermissions } from "../permissions.ts";
import { compareWithEager } from "../runtime/compare.ts";
import { generate } from "../runtime/generate.ts";
import type { GenerationStats } from "../runtime/generation_stats.ts";
import { LoadedModel } from "../runtime/model.ts";
import {
  BackendChoiceError,
  parseBackendRequest,
  parseComputeUnits,
  selectBackend,
} from "../runtime/backend/select.ts";
import { loadTokenizer } from "../tokenizer/mod.ts";

const flags = {
  model: { type: "string", short: "m" },
  tokenizer: { type: "string", short: "t" },
  prompt: { type: "string", default: "Once upon a time," },
  max_new_tokens: { type: "string", default: "100" },
  temperature: { type: "string" },
  top_p: { type: "string", default: "0.9" },
  seed: { type: "string" },
  backend: { type: "string", default: "auto" },
  compute_units: { type: "string", default: "cpuAndNeuralEngine" },
  compare_eager: { type: "string" },
  lookahead: { type: "boolean", default: false },
  ngram_size: { type: "string", default: "5" },
  window_size: { type: "string", default: "4" },
  n_verifications: { type: "string", default: "4" },
} as const;

function rate(tokens: number, seconds: number): string {
  return seconds > 0 ? `${(tokens / seconds).toFixed(1)} tok/s` : "- tok/s";
}

/** The one-line summary printed after the text. */
export function formatStats(stats: GenerationStats): string {
  const parts = [
    `prompt ${stats.promptTokens} tokens`,
    `prefill ${rate(stats.promptTokens, stats.prefillSeconds)}`,
    `generated ${stats.generatedTokens} tokens`,
    `decode ${rate(Math.max(stats.generatedTokens - 1, 0), stats.decodeSeconds)}`,
    `${stats.modelCalls} model calls`,
  ];
  const lookahead = stats.lookahead;
  if (lookahead !== undefined && lookahead.decodeCalls > 0) {
    // The first token comes from the prefill call; the rest from the lookahead calls.
    const perCall = Math.max(stats.generatedTokens - 1, 0) / lookahead.decodeCalls;
    const histogram = lookahead.acceptance.map((count, extra) => `+${extra}:${count}`).join(" ");
    parts.push(`${perCall.toFixed(2)} tokens per decode call (accepted ${histogram})`);
  }
  return parts.join(" | ");
}

const encoder = new TextEncoder();

function backendSelection(backend: string, computeUnits: string) {
  try {
    return { backend: parseBackendRequest(backend), computeUnits: parseComputeUnits(computeUnits) };
  } catch (error) {
    if (error instanceof BackendChoiceError) throw new UsageError(error.message);
    throw error;
  }
}

/** `llamane run -m BUNDLE [--prompt TEXT] ...` */
export const runCommand: Command = {
  summary: "generate text from a bundle",
  usage: `Usage: llamane run -m BUNDLE [--prompt TEXT] [flags]

Streams the prompt's continuation to stdout, then a stats line to stderr.

  -m, --model BUNDLE         bundle directory written by llamane export
  -t, --tokenizer PATH       tokenizer.model (default: the bundle's)
      --prompt TEXT          (default "Once upon a time,")
      --max_new_tokens N     (default 100)
      --temperature T        0 is greedy (default 0.6; 0 with --lookahead)
      --top_p P              nucleus sampling mass (default 0.9)
      --seed N               seed of the sampler (default: random)
      --backend B            auto (Core ML on macOS when built, else cpu), cpu or coreml
      --compute_units U      Core ML: cpuAndNeuralEngine (default), all, cpuOnly or cpuAndGPU
      --lookahead            greedy decoding in fewer model calls (single-method bundles)
      --ngram_size N         lookahead n-gram length (default 5)
      --window_size W        lookahead window columns (default 4)
      --n_verifications G    candidate n-grams verified per call (default 4); needs
                             (N-1)*(W+G) <= the bundle's input_len
      --compare_eager CKPT   also run the eager fp32 reference on the same tokens and report the
                             largest logit difference and top-1 agreement

A prompt longer than the bundle's cache is accepted: the oldest tokens are evicted (a sliding
window of the cache length plus one call).`,

  async main(argv) {
    const { values } = parseCommandLine(argv, flags);
    if (values.model === undefined) throw new UsageError("Missing --model");
    const selection = backendSelection(values.backend, values.compute_units);
    const options = {
      maxNewTokens: parseInteger("max_new_tokens", values.max_new_tokens),
      temperature: parseNumber(
        "temperature",
        values.temperature ?? (values.lookahead ? "0" : "0.6"),
        0,
      ),
      topP: parseNumber("top_p", values.top_p, 0, 1),
      ...(values.seed === undefined ? {} : { seed: parseInteger("seed", values.seed) }),
      ...(values.lookahead
        ? {
          lookahead: {
            ngramSize: parseInteger("ngram_size", values.ngram_size, 2),
            windowSize: parseInteger("window_size", values.window_size, 1),
            verifications: parseInteger("n_verifications", values.n_verifications, 0),
          },
        }
        : {}),
    };

    await requirePermissions([readNeed(values.model, "read the bundle")]);
    const manifest = await readManifest(values.model);
    const tokenizerPath = values.tokenizer ??
      (manifest.tokenizer === null ? undefined : `${values.model}/${manifest.tokenizer.file}`);
    if (tokenizerPath === undefined) {
      throw new UsageError("The bundle has no tokenizer: pass --tokenizer");
    }
    const tokenizer = await loadTokenizer(tokenizerPath);

    using model = await LoadedModel.load(values.model, await selectBackend(selection));
    const generation = generate(model, tokenizer, values.prompt, options);
    await Deno.stdout.write(encoder.encode(values.prompt));
    const generated: number[] = [];
    for await (const { token, text } of generation) {
      if (token !== null) generated.push(token);
      await Deno.stdout.write(encoder.encode(text));
    }
    await Deno.stdout.write(encoder.encode("\n"));
    console.error(formatStats(generation.stats));

    if (values.compare_eager !== undefined) {
      await requirePermissions([readNeed(values.compare_eager, "read the checkpoint")]);
      using source = await openCheckpoint(values.compare_eager);
      const eager = await EagerLlama.load(source, manifest.model);
      const tokens = [...tokenizer.encode(values.prompt, { bos: true }), ...generated];
      const limit = manifest.export.cacheLen + 1;
      const result = await compareWithEager(model, eager, tokens.slice(0, limit));
      console.error(
        `eager comparison over ${result.positions} positions: max |logit difference| ` +
          `${result.maxAbsDifference.toExponential(3)}, top-1 agreement ${
            (100 * result.top1Agreement).toFixed(1)
          }%`,
      );
    }
  },
};
