/**
 * What an export can be asked to do, with upstream's defaults, and every check that can be made
 * before anything is read or written.
 *
 * @module
 */

import type { FloatDType } from "../coreml/dtype.ts";
import type { ModelConfig } from "../llama/config.ts";
import type { QuantBits } from "./quantize.ts";
import type { PaletteBits } from "./palettize.ts";
import { splitCount } from "./split_linear.ts";
import { ANE_LIMITS } from "../bundle/ane_limits.ts";
import { EMBEDDING } from "../llama/weights.ts";
import { LINEAR_QUANTIZATIONS, type LinearQuantization } from "../bundle/manifest.ts";

/**
 * Embedding-table weights: `b` bits with one scale per row (`groupSize` 0) or per group, palette
 * indices (`lut4`, `lut6`) with one palette per `lutGroupSize` rows, float (`none`), or a GGUF's
 * own Q8_0 and Q4_0 blocks (`keep`).
 */
export type EmbeddingQuantization =
  | "none"
  | "keep"
  | { readonly bits: QuantBits; readonly groupSize: number }
  | { readonly paletteBits: PaletteBits };

/** The palette index bits of a `lut4`/`lut6` linear quantization, else undefined. */
export function linearPaletteBits(q: LinearQuantization): PaletteBits | undefined {
  return q === "lut4" ? 4 : q === "lut6" ? 6 : undefined;
}

/** Progress of a running export, reported as it happens. */
export interface ExportProgress {
  /** Weight tensors written so far, of `tensorsTotal`. */
  readonly tensorsDone: number;
  /** Weight tensors the whole export writes (each function of a piece writes its own). */
  readonly tensorsTotal: number;
  /** Bytes written to weight files so far. */
  readonly bytesWritten: number;
  /** The tensor being written. */
  readonly tensor: string;
}

/**
 * The defaults of {@link ExportOptions}, upstream's, used by the exporter and by the CLI's flags
 * and usage text alike.
 */
export const EXPORT_DEFAULTS = {
  output: "model.llamane",
  maxContextLen: 1024,
  inputLen: 32,
  dtype: "fp16",
  embeddingQuantize: { bits: 8, groupSize: 0 },
  linearQuantize: "c4w",
  lutGroupSize: 1,
  asymmetric: false,
  targetSplitSize: 1024,
  maxSplits: 8,
  graphBreaks: true,
  multifunction: false,
  maxChunkWeightBytes: ANE_LIMITS.chunkWeightBytes.value,
  maxChunkLayers: ANE_LIMITS.programLayers.value,
  maxLogitsAxis: ANE_LIMITS.tensorAxis.value,
} as const satisfies Partial<ExportOptions>;

/** Options of {@link exportModel}, named as the CLI flags are. */
export interface ExportOptions {
  /**
   * The checkpoint: a Meta `.pth` or `.safetensors` (with `params`), a Hugging Face model folder
   * or its config.json, or a GGUF file.
   */
  readonly checkpoint: string;
  /** Meta params.json; only for Meta checkpoints. */
  readonly params?: string | undefined;
  /** Bundle directory to write. @default EXPORT_DEFAULTS.output */
  readonly output?: string;
  /**
   * Tokenizer to copy into the bundle: a tokenizer file, or a `.gguf` whose vocabulary is taken.
   * @default `tokenizer.model` or `tokenizer.json` beside the checkpoint (or in its folder), if
   *   any, else a GGUF checkpoint's own vocabulary
   */
  readonly tokenizer?: string;
  /**
   * A Jinja chat template to bundle instead of the checkpoint's (`tokenizer_config.json` beside
   * the tokenizer, a GGUF's `tokenizer.chat_template`, or Llama 3's for a tiktoken tokenizer).
   */
  readonly chatTemplate?: string;
  /** Context length: cache slots plus one call. @default EXPORT_DEFAULTS.maxContextLen */
  readonly maxContextLen?: number;
  /** Tokens per forward call, L. @default EXPORT_DEFAULTS.inputLen */
  readonly inputLen?: number;
  /** Float type of weights and activations. @default EXPORT_DEFAULTS.dtype */
  readonly dtype?: FloatDType;
  /**
   * Embedding-table quantization (`-E`); `none` keeps it float.
   * @default `keep` for a GGUF whose embedding is Q8_0 or Q4_0, else EXPORT_DEFAULTS.embeddingQuantize
   */
  readonly embeddingQuantize?: EmbeddingQuantization;
  /**
   * Linear-layer weight quantization.
   * @default `keep` for a GGUF whose layer weights are all Q8_0 or Q4_0, else EXPORT_DEFAULTS.linearQuantize
   */
  readonly linearQuantize?: LinearQuantization;
  /**
   * Output channels (rows) sharing one palette with `lut4`/`lut6`, for the linear layers and a
   * palettized embedding table alike; must divide the rows of every part.
   * @default EXPORT_DEFAULTS.lutGroupSize
   */
  readonly lutGroupSize?: number;
  /**
   * Quantized weights (linear and embedding) also store an integer offset per scale group where
   * it lowers the group's error. @default EXPORT_DEFAULTS.asymmetric
   */
  readonly asymmetric?: boolean;
  /**
   * Threads that quantize the weights, the calling one's work moved to workers; 1 quantizes on
   * the calling thread. The bundle is the same for any number. @default the CPU's logical cores
   */
  readonly threads?: number;
  /**
   * Output features per part when a linear layer is split: `max(out // targetSplitSize, 1)` equal
   * parts, capped at `maxSplits`. @default EXPORT_DEFAULTS.targetSplitSize
   */
  readonly targetSplitSize?: number;
  /** Most parts a linear layer is split into. @default EXPORT_DEFAULTS.maxSplits */
  readonly maxSplits?: number;
  /** Cut the program into embedding, blocks and head pieces. @default EXPORT_DEFAULTS.graphBreaks */
  readonly graphBreaks?: boolean;
  /** Prefill and decode functions sharing weights. @default EXPORT_DEFAULTS.multifunction */
  readonly multifunction?: boolean;
  /**
   * Programs the layers are split into (`blocks_0`, `blocks_1`, ...; one program is `blocks`).
   * @default the fewest that keep each within `maxChunkWeightBytes` and `maxChunkLayers`
   */
  readonly numChunks?: number;
  /**
   * Most weight bytes per layer chunk when their number is chosen: under the 1.5 GB one Neural
   * Engine program is reported to compile. @default EXPORT_DEFAULTS.maxChunkWeightBytes
   */
  readonly maxChunkWeightBytes?: number;
  /**
   * Most layers per chunk when their number is chosen: programs of 24 layers are reported to run
   * on the Neural Engine, of 32 to fail. @default EXPORT_DEFAULTS.maxChunkLayers
   */
  readonly maxChunkLayers?: number;
  /**
   * Widest logits output: a wider vocabulary is emitted as the head's linear parts
   * (`logits_0`, `logits_1`, ...; see `--target_split_size`), which the runtime joins.
   * @default EXPORT_DEFAULTS.maxLogitsAxis
   */
  readonly maxLogitsAxis?: number;
  /** RoPE scale factor for `use_scaled_rope` models. @default DEFAULT_ROPE_SCALE_FACTOR */
  readonly ropeScaleFactor?: number;
  /** Export even when the q/k rows look like the other RoPE convention. @default false */
  readonly force?: boolean;
  /** Called as tensors are written. */
  readonly onProgress?: (progress: ExportProgress) => void;
}

/** How layers may be grouped into one program. */
export interface ChunkLimits {
  /** Most weight bytes in one chunk. */
  readonly maxWeightBytes: number;
  /** Most layers in one chunk. */
  readonly maxLayers: number;
}

/** {@link ExportOptions} with every default applied. */
export interface ResolvedExportOptions {
  readonly checkpoint: string;
  readonly params: string | undefined;
  readonly output: string;
  readonly tokenizer: string | undefined;
  readonly chatTemplate: string | undefined;
  readonly maxContextLen: number;
  readonly inputLen: number;
  /** Cache slots C. */
  readonly cacheLen: number;
  readonly dtype: FloatDType;
  readonly embeddingQuantize: EmbeddingQuantization;
  readonly linearQuantize: LinearQuantization;
  readonly lutGroupSize: number;
  /** Whether quantized groups may store an offset. */
  readonly asymmetric: boolean;
  readonly threads: number;
  readonly targetSplitSize: number;
  readonly maxSplits: number;
  readonly graphBreaks: boolean;
  readonly multifunction: boolean;
  /** Chunks asked for; undefined chooses them from the limits. */
  readonly numChunks: number | undefined;
  readonly chunkLimits: ChunkLimits;
  readonly maxLogitsAxis: number;
  readonly ropeScaleFactor: number | undefined;
  readonly force: boolean;
}

/** Options that contradict themselves or the model; nothing has been written when this is thrown. */
export class ExportOptionsError extends RangeError {
  constructor(detail: string) {
    super(`Cannot export: ${detail}`);
    this.name = "ExportOptionsError";
  }
}

/** Block size of `b4w` and `b8w`, in input values per scale. */
export const QUANT_BLOCK = 32;

/** The linear schemes that scale blocks of {@link QUANT_BLOCK} inputs. */
const BLOCKWISE_LINEAR: readonly LinearQuantization[] = ["b4w", "b8w"];

function positiveInteger(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new ExportOptionsError(`${name} must be a positive integer, got ${value}`);
  }
  return value;
}

function positiveNumber(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) {
    throw new ExportOptionsError(`${name} must be a positive number, got ${value}`);
  }
  return value;
}

/** Writes an embedding quantization as `-E` takes it: `b,g`, `lut4`, `lut6`, `none` or `keep`. */
export function formatEmbeddingQuantization(q: EmbeddingQuantization): string {
  if (typeof q === "string") return q;
  return "paletteBits" in q ? `lut${q.paletteBits}` : `${q.bits},${q.groupSize}`;
}

/** Parses `-E`: `b,g` (e.g. `8,0`, `4,32`), `lut4`, `lut6`, `none` or `keep`. */
export function parseEmbeddingQuantization(text: string): EmbeddingQuantization {
  if (text === "none" || text === "keep") return text;
  if (text === "lut4" || text === "lut6") return { paletteBits: text === "lut4" ? 4 : 6 };
  const match = /^(\d+),(\d+)$/.exec(text.trim());
  if (match === null) {
    throw new ExportOptionsError(
      `--embedding_quantize must be "<bits>,<group size>", lut4, lut6, "none" or "keep", got "${text}"`,
    );
  }
  const bits = Number(match[1]);
  if (bits !== 4 && bits !== 8) {
    throw new ExportOptionsError(`--embedding_quantize supports 4 or 8 bits, got ${bits}`);
  }
  return { bits, groupSize: Number(match[2]) };
}

function validEmbeddingQuantization(
  q: Exclude<EmbeddingQuantization, "none" | "keep">,
): boolean {
  if ("paletteBits" in q) return q.paletteBits === 4 || q.paletteBits === 6;
  return (q.bits === 4 || q.bits === 8) && q.groupSize >= 0;
}

/** Applies the defaults and checks what can be checked without the model. */
export function resolveExportOptions(options: ExportOptions): ResolvedExportOptions {
  const maxContextLen = positiveInteger(
    "max_context_len",
    options.maxContextLen ?? EXPORT_DEFAULTS.maxContextLen,
  );
  const inputLen = positiveInteger("input_len", options.inputLen ?? EXPORT_DEFAULTS.inputLen);
  if (inputLen >= maxContextLen) {
    throw new ExportOptionsError(
      `input_len (${inputLen}) must be less than max_context_len (${maxContextLen}): the rest is the cache`,
    );
  }
  const dtype = options.dtype ?? EXPORT_DEFAULTS.dtype;
  if (dtype !== "fp16" && dtype !== "fp32") {
    throw new ExportOptionsError(`dtype must be fp16 or fp32, got "${dtype}"`);
  }
  const linearQuantize = options.linearQuantize ?? EXPORT_DEFAULTS.linearQuantize;
  if (!LINEAR_QUANTIZATIONS.includes(linearQuantize)) {
    throw new ExportOptionsError(
      `linear_quantize must be one of ${LINEAR_QUANTIZATIONS.join(", ")}, got "${linearQuantize}"`,
    );
  }
  const embeddingQuantize = options.embeddingQuantize ?? EXPORT_DEFAULTS.embeddingQuantize;
  if (typeof embeddingQuantize !== "string" && !validEmbeddingQuantization(embeddingQuantize)) {
    throw new ExportOptionsError(
      `embedding_quantize must use 4 or 8 bits and a group size >= 0, or be lut4 or lut6`,
    );
  }
  const graphBreaks = options.graphBreaks ?? EXPORT_DEFAULTS.graphBreaks;
  const numChunks = options.numChunks === undefined
    ? undefined
    : positiveInteger("num_chunks", options.numChunks);
  if (!graphBreaks && numChunks !== undefined && numChunks > 1) {
    throw new ExportOptionsError(
      "layer chunks are programs between graph breaks: drop --no_graph_breaks or --num_chunks",
    );
  }
  return {
    checkpoint: options.checkpoint,
    params: options.params,
    output: options.output ?? EXPORT_DEFAULTS.output,
    tokenizer: options.tokenizer,
    chatTemplate: options.chatTemplate,
    maxContextLen,
    inputLen,
    // Multifunction bundles share one cache between prefill and decode, which must hold all but
    // the one token a decode call adds.
    cacheLen: options.multifunction ? maxContextLen - 1 : maxContextLen - inputLen,
    dtype,
    embeddingQuantize,
    linearQuantize,
    lutGroupSize: positiveInteger(
      "lut_group_size",
      options.lutGroupSize ?? EXPORT_DEFAULTS.lutGroupSize,
    ),
    asymmetric: options.asymmetric ?? EXPORT_DEFAULTS.asymmetric,
    targetSplitSize: positiveInteger(
      "target_split_size",
      options.targetSplitSize ?? EXPORT_DEFAULTS.targetSplitSize,
    ),
    maxSplits: positiveInteger("max_splits", options.maxSplits ?? EXPORT_DEFAULTS.maxSplits),
    graphBreaks,
    multifunction: options.multifunction ?? EXPORT_DEFAULTS.multifunction,
    numChunks,
    chunkLimits: {
      maxWeightBytes: positiveNumber(
        "max_chunk_weight_bytes",
        options.maxChunkWeightBytes ?? EXPORT_DEFAULTS.maxChunkWeightBytes,
      ),
      maxLayers: positiveInteger(
        "max_chunk_layers",
        options.maxChunkLayers ?? EXPORT_DEFAULTS.maxChunkLayers,
      ),
    },
    maxLogitsAxis: positiveInteger(
      "max_logits_axis",
      options.maxLogitsAxis ?? EXPORT_DEFAULTS.maxLogitsAxis,
    ),
    ropeScaleFactor: options.ropeScaleFactor,
    force: options.force ?? false,
    threads: positiveInteger("threads", options.threads ?? navigator.hardwareConcurrency),
  };
}

/** The linear layers of a model: name and `[out, in]`, in the order the graph uses them. */
export function linearShapes(config: ModelConfig): [string, number, number][] {
  const { dim, nHeads, nKvHeads, headDim, hiddenDim, vocabSize } = config;
  const shapes: [string, number, number][] = [];
  for (let layer = 0; layer < config.nLayers; layer++) {
    const prefix = `layers.${layer}`;
    shapes.push(
      [`${prefix}.attention.wq.weight`, nHeads * headDim, dim],
      [`${prefix}.attention.wk.weight`, nKvHeads * headDim, dim],
      [`${prefix}.attention.wv.weight`, nKvHeads * headDim, dim],
      [`${prefix}.attention.wo.weight`, dim, nHeads * headDim],
      [`${prefix}.feed_forward.w1.weight`, hiddenDim, dim],
      [`${prefix}.feed_forward.w3.weight`, hiddenDim, dim],
      [`${prefix}.feed_forward.w2.weight`, dim, hiddenDim],
    );
  }
  shapes.push([
    config.tiedOutput ? "tok_embeddings.weight (tied output)" : "output.weight",
    vocabSize,
    dim,
  ]);
  return shapes;
}

/**
 * Checks the options against the model: every linear splits evenly, blocks and palette groups
 * divide what they cut, and the embedding's scheme suits the output head too (a linear layer
 * stored as `-E` says).
 */
export function checkOptionsForModel(options: ResolvedExportOptions, config: ModelConfig): void {
  const paletteBits = linearPaletteBits(options.linearQuantize);
  const shapes = linearShapes(config);
  for (const [name, out, input] of shapes.slice(0, -1)) {
    const parts = splitCount(name, out, options.targetSplitSize, options.maxSplits);
    if (BLOCKWISE_LINEAR.includes(options.linearQuantize) && input % QUANT_BLOCK !== 0) {
      throw new ExportOptionsError(
        `${options.linearQuantize} needs input sizes divisible by ${QUANT_BLOCK}, but "${name}" ` +
          `has ${input} inputs; use c${options.linearQuantize.slice(1)}`,
      );
    }
    if (paletteBits !== undefined) {
      checkPaletteGroups(options, name, out / parts, input, paletteBits, "each part of ");
    }
  }
  const [headName, vocab] = shapes.at(-1)!;
  const headWidth = vocab / splitCount(headName, vocab, options.targetSplitSize, options.maxSplits);
  if (headWidth > options.maxLogitsAxis) {
    throw new ExportOptionsError(
      `the vocabulary of ${config.vocabSize} is wider than one logits output may be ` +
        `(${options.maxLogitsAxis}), and the head splits into parts of ${headWidth}: lower ` +
        "--target_split_size or raise --max_splits so that each part is narrower",
    );
  }
  const e = options.embeddingQuantize;
  if (typeof e === "string") return;
  if ("paletteBits" in e) {
    checkPaletteGroups(options, EMBEDDING, config.vocabSize, config.dim, e.paletteBits, "");
    checkPaletteGroups(options, headName, headWidth, config.dim, e.paletteBits, "each part of ");
    return;
  }
  if (e.groupSize > 0 && config.dim % e.groupSize !== 0) {
    throw new ExportOptionsError(
      `embedding group size ${e.groupSize} does not divide the embedding row length ${config.dim}`,
    );
  }
  if (e.groupSize !== 0 && e.groupSize !== QUANT_BLOCK) {
    throw new ExportOptionsError(
      `-E ${e.bits},${e.groupSize} also stores the output head, a linear layer, which takes one ` +
        `scale per row (group 0) or per ${QUANT_BLOCK} inputs: use -E ${e.bits},0 or ` +
        `${e.bits},${QUANT_BLOCK}`,
    );
  }
}

/**
 * Checks that `--lut_group_size` divides a weight's `rows` and that each palette is fitted to at
 * least as many values as it has entries.
 */
function checkPaletteGroups(
  options: ResolvedExportOptions,
  name: string,
  rows: number,
  columns: number,
  bits: PaletteBits,
  where: string,
): void {
  const groupRows = options.lutGroupSize;
  if (rows % groupRows !== 0) {
    throw new ExportOptionsError(
      `--lut_group_size ${groupRows} does not divide the ${rows} rows of ${where}"${name}": ` +
        "choose a divisor of every part's rows (a power of two usually is one)",
    );
  }
  if (groupRows * columns < 2 ** bits) {
    throw new ExportOptionsError(
      `lut${bits} fits palettes of ${2 ** bits} entries, but a group of ${groupRows} rows of ` +
        `"${name}" holds only ${groupRows * columns} values: raise --lut_group_size`,
    );
  }
}
