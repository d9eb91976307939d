/**
 * `llamane eval`: the perplexity of a bundle on a text, and with a reference checkpoint how far the
 * bundle's predictions are from that checkpoint's eager fp32 forward.
 *
 * @module
 */

import { type FlagTable, parseFlags, parseInteger, usage, UsageError } from "./args.ts";
import type { Command } from "./command.ts";
import { modelFlags, modelPathsFromFlags } from "./model_flags.ts";
import { ProgressLine } from "./progress.ts";
import { backendSelection, openBundleTokenizer, runFlags } from "./run.ts";
import { readRegularTextFile } from "../files/confined.ts";
import { EagerLlama } from "../llama/forward.ts";
import { openModel } from "../llama/open.ts";
import { readNeed, requirePermissions } from "../permissions.ts";
import { checkEvaluation, evaluate, type Evaluation } from "../runtime/evaluate.ts";
import { checkTokenizerFits, encodeText } from "../runtime/generate.ts";
import { loadModel } from "../runtime/load_model.ts";

/** Largest text read: tens of millions of tokens, far more than anyone scores at once. */
const MAX_TEXT_BYTES = 256 << 20;

const flags = {
  model: runFlags.model,
  tokenizer: runFlags.tokenizer,
  text: { type: "string", value: "FILE", help: "UTF-8 text to score" },
  reference: {
    type: "string",
    value: "CKPT",
    help: "also compare with the eager fp32 forward of this checkpoint (a Hugging Face folder, a " +
      ".gguf, or a Meta .pth or .safetensors with -p): top-1 agreement, mean KL divergence and " +
      "cross-entropy delta",
  },
  params: modelFlags.params,
  rope_scale_factor: modelFlags.rope_scale_factor,
  max_tokens: {
    type: "string",
    value: "N",
    help: "score only the first N tokens of the text",
    defaultText: "all",
  },
  json: { type: "boolean", help: "print the figures as JSON" },
  backend: runFlags.backend,
  compute_units: runFlags.compute_units,
  quiet: { type: "boolean", short: "q", help: "no progress line" },
} as const satisfies FlagTable;

/** The figures as a small table: the bundle's column, and the reference's when there is one. */
export function formatEvaluation(evaluation: Evaluation, bundle: string, text: string): string {
  const { reference } = evaluation;
  const rows: [string, string, string][] = [
    ["", "bundle", reference === undefined ? "" : "reference"],
    [
      "perplexity",
      evaluation.perplexity.toFixed(4),
      reference?.perplexity.toFixed(4) ?? "",
    ],
    [
      "cross-entropy, nats",
      evaluation.crossEntropy.toFixed(4),
      reference?.crossEntropy.toFixed(4) ?? "",
    ],
  ];
  if (reference !== undefined) {
    const delta = reference.crossEntropyDelta;
    rows.push(
      ["cross-entropy delta, nats", `${delta < 0 ? "" : "+"}${delta.toFixed(4)}`, ""],
      ["top-1 agreement", reference.top1Agreement.toFixed(4), ""],
      ["mean KL divergence, nats", reference.meanKlDivergence.toFixed(5), ""],
    );
  }
  const widths = [0, 1, 2].map((c) => Math.max(...rows.map((row) => row[c]!.length)));
  const lines = rows.map(([name, a, b]) =>
    `  ${name.padEnd(widths[0]!)}  ${a.padStart(widths[1]!)}  ${b.padStart(widths[2]!)}`.trimEnd()
  );
  return [
    `${bundle} on ${text}: ${evaluation.tokens} tokens, ${evaluation.positions} predictions scored`,
    ...lines,
  ].join("\n");
}

/** `llamane eval -m BUNDLE --text FILE [--reference CKPT] ...` */
export const evalCommand: Command = {
  summary: "score a bundle on a text: perplexity, and agreement with a reference checkpoint",
  usage: usage({
    command: "eval",
    synopsis: ["-m BUNDLE --text FILE [--reference CKPT] [--max_tokens N] [--json]"],
    description:
      "Feeds the text to the bundle as generation does (calls of the bundle's length; past the cache the oldest tokens are evicted, the first 4 kept when the model was trained beyond the cache, so each token sees the cache length before it) and prints its perplexity. With --reference, the checkpoint's eager fp32 forward reads the same tokens with the same window, and the table adds its perplexity, the bundle's cross-entropy minus the reference's, the fraction of positions where both predict the same token, and the mean KL divergence of the bundle's predictions from the reference's.",
    flags,
  }),

  async main(argv) {
    const { values } = parseFlags(argv, flags);
    if (values.model === undefined) throw new UsageError("Missing --model");
    if (values.text === undefined) throw new UsageError("Missing --text");
    if (values.reference === undefined && values.params !== undefined) {
      throw new UsageError("--params belongs to --reference");
    }
    const maxTokens = values.max_tokens === undefined
      ? Infinity
      : parseInteger("max_tokens", values.max_tokens, 2);
    const selection = backendSelection(values.backend, values.compute_units);
    await requirePermissions([readNeed(values.text, "read the text")]);
    const { manifest, tokenizer } = await openBundleTokenizer(values.model, values.tokenizer);
    using model = await loadModel(values.model, selection);
    checkTokenizerFits(model, tokenizer);
    const text = readRegularTextFile(values.text, MAX_TEXT_BYTES);
    const tokens = encodeText(model, tokenizer, text).slice(0, maxTokens);

    let reference: EagerLlama | undefined;
    if (values.reference !== undefined) {
      const { paths, options } = modelPathsFromFlags({ ...values, checkpoint: values.reference });
      using opened = await openModel(paths, options);
      for (const warning of opened.warnings) console.error(`warning: ${warning}`);
      checkEvaluation(manifest.model, [tokens], opened.config);
      reference = await EagerLlama.load(opened.source, opened.config);
    } else {
      checkEvaluation(manifest.model, [tokens]);
    }

    const progress = new ProgressLine(values.quiet);
    const evaluation = await evaluate(model, [tokens], {
      ...(reference === undefined ? {} : { reference }),
      onProgress: (scored, total) => {
        const rate = scored / Math.max(progress.elapsedSeconds(), 1e-3);
        progress.update(`eval ${scored}/${total} positions, ${rate.toFixed(1)} tok/s`);
      },
    });
    progress.done();
    console.log(
      values.json
        ? JSON.stringify({ bundle: values.model, text: values.text, ...evaluation }, null, 2)
        : formatEvaluation(evaluation, values.model, values.text),
    );
  },
};
