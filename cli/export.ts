/**
 * `llamane export`: a checkpoint to a bundle, with upstream's flags and defaults.
 *
 * @module
 */

import {
  type FlagTable,
  parseChoice,
  parseFlags,
  parseInteger,
  parseNumber,
  usage,
} from "./args.ts";
import type { Command } from "./command.ts";
import { modelFlags, modelPathsFromFlags } from "./model_flags.ts";
import { ProgressLine } from "./progress.ts";
import { exportModel } from "../export/export_model.ts";
import {
  EXPORT_DEFAULTS,
  formatEmbeddingQuantization,
  parseEmbeddingQuantization,
} from "../export/options.ts";
import { keepSummary } from "../export/weight_storage.ts";
import { formatReconstructionError } from "../export/reconstruction_error.ts";
import { formatBytes } from "./format.ts";
import { formatFindings } from "./lint.ts";
import { lintBundle } from "../bundle/lint.ts";
import { LINEAR_QUANTIZATIONS } from "../bundle/manifest.ts";

const FLOAT_DTYPES = ["fp16", "fp32"] as const;

const flags = {
  ...modelFlags,
  output: {
    type: "string",
    short: "o",
    value: "PATH",
    help: "bundle directory",
    default: EXPORT_DEFAULTS.output,
  },
  tokenizer: {
    type: "string",
    short: "t",
    value: "PATH",
    help: "tokenizer to bundle: a tokenizer.model, a tokenizer.json, or a .gguf's vocabulary",
    defaultText: "tokenizer.model or tokenizer.json beside the checkpoint, else a GGUF " +
      "checkpoint's own vocabulary",
  },
  chat_template: {
    type: "string",
    value: "FILE",
    help: "Jinja chat template to bundle",
    defaultText:
      "tokenizer_config.json's beside the tokenizer; a GGUF's own; Llama 3's for tiktoken",
  },
  max_context_len: {
    type: "string",
    value: "N",
    help: "cache slots plus one call",
    default: String(EXPORT_DEFAULTS.maxContextLen),
  },
  input_len: {
    type: "string",
    value: "N",
    help: "tokens per forward call, L",
    default: String(EXPORT_DEFAULTS.inputLen),
  },
  dtype: {
    type: "string",
    value: FLOAT_DTYPES.join("|"),
    help: "weights and activations; the Neural Engine needs fp16",
    default: EXPORT_DEFAULTS.dtype,
  },
  embedding_quantize: {
    type: "string",
    short: "E",
    value: "B,G",
    help: "embedding table and output head: bits (4 or 8) and group size (0: one scale per " +
      "row, or 32), lut4 or lut6 (palettes as for --linear_quantize), none, or keep (a GGUF's " +
      "Q8_0 and Q4_0 blocks as they are)",
    defaultText: `keep for a GGUF whose embedding is Q8_0 or Q4_0, else ${
      formatEmbeddingQuantization(EXPORT_DEFAULTS.embeddingQuantize)
    }`,
  },
  linear_quantize: {
    type: "string",
    value: "Q",
    help: `the layers' linear weights, one of ${LINEAR_QUANTIZATIONS.join(", ")}: c4w int4 per ` +
      "channel (what the Neural Engine wants), b4w int4 per block of 32 inputs, c8w int8 per " +
      "channel, b8w int8 per block of 32, " +
      "lut4 and lut6 4-bit and 6-bit indices into a palette per --lut_group_size rows (k-means " +
      "weighted toward large weights), keep a GGUF's Q8_0 and Q4_0 blocks as they are (other " +
      "types are requantized per block of 32, the summary says which)",
    defaultText:
      `keep for a GGUF whose layer weights are all Q8_0 or Q4_0, else ${EXPORT_DEFAULTS.linearQuantize}`,
  },
  lut_group_size: {
    type: "string",
    value: "N",
    help: "output channels sharing one palette with lut4 and lut6; must divide every part's rows",
    default: String(EXPORT_DEFAULTS.lutGroupSize),
  },
  asymmetric: {
    type: "boolean",
    help: "quantized weights also store an integer offset per scale group where it lowers the " +
      "error (b4w's error falls by a tenth, c4w's hardly)",
  },
  threads: {
    type: "string",
    value: "N",
    help: "threads that quantize the weights (the bundle is the same for any number)",
    defaultText: "the CPU's logical cores",
  },
  target_split_size: {
    type: "string",
    value: "N",
    help: "split linear layers into parts of about N outputs",
    default: String(EXPORT_DEFAULTS.targetSplitSize),
  },
  max_splits: {
    type: "string",
    value: "N",
    help: "at most N parts per linear layer",
    default: String(EXPORT_DEFAULTS.maxSplits),
  },
  no_graph_breaks: {
    type: "boolean",
    help: "one program instead of the embedding, blocks and head pieces",
  },
  multifunction: {
    type: "boolean",
    help: "prefill (L tokens) and decode (1 token) functions sharing one weight file",
  },
  force: {
    type: "boolean",
    help: "export even when the q/k rows look like the other RoPE order than the layout says",
  },
  num_chunks: {
    type: "string",
    value: "N",
    help: "split the layers into N programs (blocks_0 ... blocks_N-1)",
    defaultText: "the fewest within --max_chunk_gb and --max_chunk_layers",
  },
  max_chunk_gb: {
    type: "string",
    value: "GB",
    help: "most weights per layer chunk when choosing their number",
    default: String(EXPORT_DEFAULTS.maxChunkWeightBytes / 1e9),
  },
  max_chunk_layers: {
    type: "string",
    value: "N",
    help: "most layers per chunk when choosing their number",
    default: String(EXPORT_DEFAULTS.maxChunkLayers),
  },
  quiet: { type: "boolean", short: "q", help: "no progress line" },
} as const satisfies FlagTable;

/** `llamane export -c CKPT [-p PARAMS] [-o BUNDLE] ...` */
export const exportCommand: Command = {
  summary: "export a checkpoint to a Core ML bundle for the Neural Engine",
  usage: usage({
    command: "export",
    synopsis: ["-c CHECKPOINT [-p PARAMS] [-o BUNDLE] [flags]"],
    description:
      "Writes a bundle directory: one static-shape Core ML program per piece (embedding, blocks, head), the tokenizer, and manifest.json. The bundle is staged beside BUNDLE and renamed into place.",
    flags,
  }),

  async main(argv) {
    const { values } = parseFlags(argv, flags);
    const { paths, options } = modelPathsFromFlags(values);
    const dtype = parseChoice("dtype", values.dtype, FLOAT_DTYPES);
    const progress = new ProgressLine(values.quiet);
    const summary = await exportModel({
      ...paths,
      ...options,
      output: values.output,
      ...(values.tokenizer === undefined ? {} : { tokenizer: values.tokenizer }),
      ...(values.chat_template === undefined ? {} : { chatTemplate: values.chat_template }),
      maxContextLen: parseInteger("max_context_len", values.max_context_len, 2),
      inputLen: parseInteger("input_len", values.input_len, 1),
      dtype,
      ...(values.embedding_quantize === undefined
        ? {}
        : { embeddingQuantize: parseEmbeddingQuantization(values.embedding_quantize) }),
      ...(values.linear_quantize === undefined ? {} : {
        linearQuantize: parseChoice(
          "linear_quantize",
          values.linear_quantize,
          LINEAR_QUANTIZATIONS,
        ),
      }),
      lutGroupSize: parseInteger("lut_group_size", values.lut_group_size, 1),
      asymmetric: values.asymmetric,
      ...(values.threads === undefined
        ? {}
        : { threads: parseInteger("threads", values.threads, 1) }),
      targetSplitSize: parseInteger("target_split_size", values.target_split_size, 1),
      maxSplits: parseInteger("max_splits", values.max_splits, 1),
      graphBreaks: !values.no_graph_breaks,
      multifunction: values.multifunction,
      force: values.force,
      ...(values.num_chunks === undefined
        ? {}
        : { numChunks: parseInteger("num_chunks", values.num_chunks, 1) }),
      maxChunkWeightBytes: parseNumber("max_chunk_gb", values.max_chunk_gb, 1e-9) * 1e9,
      maxChunkLayers: parseInteger("max_chunk_layers", values.max_chunk_layers, 1),
      onProgress: (p) =>
        progress.update(
          `export: ${p.tensorsDone}/${p.tensorsTotal} tensors, ${
            formatBytes(p.bytesWritten)
          } written, ` +
            `${progress.elapsedSeconds().toFixed(1)} s`,
        ),
    });
    progress.done();
    for (const warning of summary.warnings) console.error(`warning: ${warning}`);
    const { manifest } = summary;
    const e = manifest.export;
    console.log(`exported ${summary.output} in ${summary.seconds.toFixed(1)} s`);
    console.log(
      `  ${e.dtype}, linear ${e.linearQuantize}, embedding and head ${e.embeddingQuantize}, L ${e.inputLen}, ` +
        `cache ${e.cacheLen}, ${
          manifest.tokenizer === null ? "no tokenizer" : `tokenizer ${manifest.tokenizer.kind}`
        }`,
    );
    console.log(`  tokenizer: ${summary.tokenizerOrigin}`);
    for (const line of keepSummary(summary.storage)) console.log(`  ${line}`);
    console.log(`  ${formatReconstructionError(summary.reconstructionError)}`);
    for (const piece of manifest.pieces) {
      console.log(`  ${piece.package.padEnd(22)} ${formatBytes(piece.weightBytes)}`);
    }
    console.log(`  total weights ${formatBytes(summary.weightBytes)}`);
    // The Neural Engine's limits, checked on what was written: warnings, the export stands.
    for (const line of formatFindings((await lintBundle(summary.output)).findings)) {
      console.log(`  ${line}`);
    }
  },
};
