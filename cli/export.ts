/**
 * `llamane export`: a checkpoint to a bundle, with upstream's flags and defaults.
 *
 * @module
 */

import { parseCommandLine, parseInteger, UsageError } from "./args.ts";
import type { Command } from "./command.ts";
import { modelFlags, modelFlagsUsage, modelPathsFromFlags } from "./model_flags.ts";
import { ProgressLine } from "./progress.ts";
import { exportModel } from "../export/export_model.ts";
import {
  DEFAULT_OUTPUT,
  type LinearQuantization,
  parseEmbeddingQuantization,
} from "../export/options.ts";
import { formatBytes } from "./format.ts";
import type { FloatDType } from "../coreml/dtype.ts";

const flags = {
  ...modelFlags,
  output: { type: "string", short: "o", default: DEFAULT_OUTPUT },
  tokenizer: { type: "string", short: "t" },
  max_context_len: { type: "string", default: "1024" },
  input_len: { type: "string", default: "32" },
  dtype: { type: "string", default: "fp16" },
  embedding_quantize: { type: "string", short: "E", default: "8,0" },
  linear_quantize: { type: "string", default: "c4w" },
  target_split_size: { type: "string", default: "1024" },
  max_splits: { type: "string", default: "8" },
  no_graph_breaks: { type: "boolean", default: false },
  multifunction: { type: "boolean", default: false },
  quiet: { type: "boolean", short: "q", default: false },
} as const;

/** `llamane export -c CKPT -p PARAMS [-o BUNDLE] ...` */
export const exportCommand: Command = {
  summary: "export a checkpoint to a Core ML bundle for the Neural Engine",
  usage: `Usage: llamane export -c CHECKPOINT -p PARAMS [-o BUNDLE] [flags]

Writes a bundle directory: one static-shape Core ML program per piece (embedding, blocks, head),
the tokenizer, and manifest.json. The bundle is staged beside BUNDLE and renamed into place.

${modelFlagsUsage}
  -o, --output PATH              bundle directory (default model.llamane)
  -t, --tokenizer PATH           tokenizer to bundle (default: tokenizer.model beside the checkpoint)
      --max_context_len N        cache slots plus one call (default 1024)
      --input_len N              tokens per forward call, L (default 32)
      --dtype fp16|fp32          weights and activations (default fp16; the Neural Engine needs fp16)
  -E, --embedding_quantize B,G   embedding bits 4 or 8 and group size, 0 = per row; or none (default 8,0)
      --linear_quantize Q        c4w, b4w, c8w or none (default c4w; the Neural Engine wants c4w)
      --target_split_size N      split linear layers into parts of about N outputs (default 1024)
      --max_splits N             at most N parts per linear layer (default 8)
      --no_graph_breaks          one program instead of embedding, blocks and head
      --multifunction            prefill and decode functions sharing weights (not available yet)
  -q, --quiet                    no progress line

Kebab-case spellings (--max-context-len) work too.`,

  async main(argv) {
    const { values } = parseCommandLine(argv, flags);
    const { paths, options } = modelPathsFromFlags(values);
    const dtype = values.dtype as FloatDType;
    if (dtype !== "fp16" && dtype !== "fp32") {
      throw new UsageError(`Invalid --dtype: expected fp16 or fp32, got "${dtype}"`);
    }
    const progress = new ProgressLine(values.quiet);
    const summary = await exportModel({
      ...paths,
      ...options,
      output: values.output,
      ...(values.tokenizer === undefined ? {} : { tokenizer: values.tokenizer }),
      maxContextLen: parseInteger("max_context_len", values.max_context_len, 2),
      inputLen: parseInteger("input_len", values.input_len, 1),
      dtype,
      embeddingQuantize: parseEmbeddingQuantization(values.embedding_quantize),
      linearQuantize: values.linear_quantize as LinearQuantization,
      targetSplitSize: parseInteger("target_split_size", values.target_split_size, 1),
      maxSplits: parseInteger("max_splits", values.max_splits, 1),
      graphBreaks: !values.no_graph_breaks,
      multifunction: values.multifunction,
      onProgress: (p) =>
        progress.update(
          `export: ${p.tensorsDone}/${p.tensorsTotal} tensors, ${
            formatBytes(p.bytesWritten)
          } written, ` +
            `${progress.elapsedSeconds().toFixed(1)} s`,
        ),
    });
    progress.done();
    const { manifest } = summary;
    const e = manifest.export;
    console.log(`exported ${summary.output} in ${summary.seconds.toFixed(1)} s`);
    console.log(
      `  ${e.dtype}, linear ${e.linearQuantize}, embedding ${e.embeddingQuantize}, L ${e.inputLen}, ` +
        `cache ${e.cacheLen}, ${
          manifest.tokenizer === null ? "no tokenizer" : `tokenizer ${manifest.tokenizer.kind}`
        }`,
    );
    for (const piece of manifest.pieces) {
      console.log(`  ${piece.package.padEnd(22)} ${formatBytes(piece.weightBytes)}`);
    }
    console.log(`  total weights ${formatBytes(summary.weightBytes)}`);
  },
};
