/**
 * How each weight matrix is stored in the bundle: float, quantized from its values, palettized, or
 * (with
 * `keep`) a GGUF's own Q8_0 and Q4_0 blocks carried over as int8 and int4 with their fp16
 * scales, one per 32 inputs, so that the bundle dequantizes to exactly llama.cpp's values.
 * Under `keep` a tensor whose type cannot be carried over falls back, and says why.
 *
 * @module
 */

import { isSymmetricBlockDType, type SymmetricBlockDType } from "../checkpoint/blocks.ts";
import type { StorageDType, TensorSource } from "../checkpoint/tensor_source.ts";
import type { FloatDType } from "../coreml/dtype.ts";
import type { ModelConfig } from "../llama/config.ts";
import { EMBEDDING, OUTPUT } from "../llama/weights.ts";
import {
  type EmbeddingQuantization,
  type ExportOptions,
  ExportOptionsError,
  linearPaletteBits,
  linearShapes,
  QUANT_BLOCK,
  type ResolvedExportOptions,
} from "./options.ts";
import type { LinearQuantization } from "../bundle/manifest.ts";
import type { QuantBits } from "./quantize.ts";
import type { PaletteBits } from "./palettize.ts";

/** One stored form of a `[rows, columns]` weight. */
export type WeightStorage =
  | { readonly kind: "float" }
  /** Quantized from the values, `groupSize` values of a row per scale (0: the whole row). */
  | { readonly kind: "quantized"; readonly bits: QuantBits; readonly groupSize: number }
  /** The checkpoint's blocks as they are. */
  | { readonly kind: "kept"; readonly dtype: SymmetricBlockDType }
  /** Indices into a k-means palette of `2^bits` values per `groupRows` rows. */
  | { readonly kind: "palettized"; readonly bits: PaletteBits; readonly groupRows: number };

/** The storage chosen for one checkpoint tensor, and why when `keep` had to fall back. */
export interface StorageChoice {
  /** How the tensor is written. */
  readonly storage: WeightStorage;
  /** Set when `keep` was asked for and the tensor could not be kept. */
  readonly fallback?: string;
}

/** How one checkpoint tensor was stored, as the export summary reports it. */
export interface TensorStorage {
  /** The tensor's Meta name. */
  readonly tensor: string;
  /** Its type in the checkpoint. */
  readonly checkpointType: StorageDType;
  /** How it was written, and why when `keep` fell back. */
  readonly choice: StorageChoice;
}

/** What each seed scheme stores. */
const LINEAR_SCHEMES: Readonly<
  Record<Exclude<LinearQuantization, "keep" | "lut4" | "lut6">, WeightStorage>
> = {
  none: { kind: "float" },
  c4w: { kind: "quantized", bits: 4, groupSize: 0 },
  b4w: { kind: "quantized", bits: 4, groupSize: QUANT_BLOCK },
  c8w: { kind: "quantized", bits: 8, groupSize: 0 },
  b8w: { kind: "quantized", bits: 8, groupSize: QUANT_BLOCK },
};

/**
 * What `keep` does with a tensor of type `dtype`: Q8_0 and Q4_0 are kept; other block types are
 * requantized per block of 32 (int4 for the 4-bit types, int8 above); float tensors stay float.
 */
export function keepChoice(dtype: StorageDType): StorageChoice {
  if (isSymmetricBlockDType(dtype)) return { storage: { kind: "kept", dtype } };
  const int4 = { kind: "quantized", bits: 4, groupSize: QUANT_BLOCK } as const;
  const int8 = { kind: "quantized", bits: 8, groupSize: QUANT_BLOCK } as const;
  switch (dtype) {
    case "Q4_1":
      return {
        storage: int4,
        fallback: "Q4_1 adds a minimum to each block, which a symmetric int4 block cannot hold",
      };
    case "Q4_K":
      return {
        storage: int4,
        fallback: "Q4_K scales and offsets 32 values at a time from two fp16 values per 256",
      };
    case "Q5_K":
    case "Q6_K":
      return {
        storage: int8,
        fallback: `${dtype} has more than 4 bits per value and scales not stored per 32 values`,
      };
    default:
      return { storage: { kind: "float" }, fallback: `${dtype} is a float type, kept as float` };
  }
}

/**
 * The storage of a linear weight of checkpoint type `dtype` under `scheme`, palettes shared by
 * `lutGroupSize` rows.
 */
export function linearChoice(
  scheme: LinearQuantization,
  dtype: StorageDType,
  lutGroupSize: number,
): StorageChoice {
  if (scheme === "keep") return keepChoice(dtype);
  const bits = linearPaletteBits(scheme);
  if (bits !== undefined) return { storage: { kind: "palettized", bits, groupRows: lutGroupSize } };
  return { storage: LINEAR_SCHEMES[scheme as keyof typeof LINEAR_SCHEMES] };
}

/**
 * The storage of the linear weight `tensor`, of checkpoint type `dtype`: the output head (the
 * output weight, or the embedding table it is tied to) as `-E` stores the embedding, every
 * layer's linear as `--linear_quantize` says. A projection onto the whole vocabulary loses far
 * more from 4-bit weights than any layer does: on SmolLM2-135M a c4w head alone cost half the
 * top-1 agreement that the rest of a c4w export kept (docs/design.md).
 */
export function linearWeightChoice(
  options: Pick<
    ResolvedExportOptions,
    "linearQuantize" | "embeddingQuantize" | "lutGroupSize"
  >,
  tensor: string,
  dtype: StorageDType,
): StorageChoice {
  return tensor === EMBEDDING || tensor === OUTPUT
    ? embeddingChoice(options.embeddingQuantize, dtype, options.lutGroupSize)
    : linearChoice(options.linearQuantize, dtype, options.lutGroupSize);
}

/** The storage of the embedding table, of checkpoint type `dtype`, under `-E scheme`. */
export function embeddingChoice(
  scheme: EmbeddingQuantization,
  dtype: StorageDType,
  lutGroupSize: number,
): StorageChoice {
  if (scheme === "keep") return keepChoice(dtype);
  if (scheme === "none") return { storage: { kind: "float" } };
  if ("paletteBits" in scheme) {
    return { storage: { kind: "palettized", bits: scheme.paletteBits, groupRows: lutGroupSize } };
  }
  return { storage: { kind: "quantized", bits: scheme.bits, groupSize: scheme.groupSize } };
}

/** Bytes a `[rows, columns]` weight takes in `storage`, with scales of `dtype`. */
export function storageBytes(
  storage: WeightStorage,
  rows: number,
  columns: number,
  dtype: FloatDType,
): number {
  const float = dtype === "fp16" ? 2 : 4;
  if (storage.kind === "float") return rows * columns * float;
  if (storage.kind === "palettized") {
    return Math.ceil((rows * columns * storage.bits) / 8) +
      (rows / storage.groupRows) * 2 ** storage.bits * float;
  }
  const [bits, group] = storage.kind === "kept"
    ? [storage.dtype === "Q8_0" ? 8 : 4, 32]
    : [storage.bits, storage.groupSize === 0 ? columns : storage.groupSize];
  return (rows * columns * bits) / 8 + rows * (columns / group) * float;
}

/** Describes a storage for people, e.g. "int4 per block of 32". */
export function describeStorage(storage: WeightStorage): string {
  switch (storage.kind) {
    case "float":
      return "float";
    case "kept":
      return `int${storage.dtype === "Q8_0" ? 8 : 4} per block of 32 with the GGUF's own scales`;
    case "quantized":
      return `int${storage.bits} ${
        storage.groupSize === 0 ? "per row" : `per block of ${storage.groupSize}`
      }, requantized`;
    case "palettized":
      return `${storage.bits}-bit indices into a palette per ${storage.groupRows} rows`;
  }
}

/** The layer weights whose types decide whether `keep` is the default. */
function layerLinearTypes(config: ModelConfig, source: TensorSource): StorageDType[] {
  return linearShapes(config).slice(0, -1).map(([name]) => source.info(name)!.dtype);
}

/**
 * `options` with the checkpoint's defaults: `keep` for the linears of a GGUF whose layer weights
 * are all Q8_0 or Q4_0, and for its embedding when that is Q8_0 or Q4_0 (the seed's defaults
 * otherwise). Refuses `keep` asked of a checkpoint that is not a GGUF.
 */
export function withCheckpointDefaults(
  options: ExportOptions,
  config: ModelConfig,
  source: TensorSource,
): ExportOptions {
  const asked = [options.linearQuantize, options.embeddingQuantize];
  if (source.format !== "gguf") {
    if (asked.includes("keep")) {
      throw new ExportOptionsError(
        `keep carries a GGUF's Q8_0 and Q4_0 blocks over, but ${source.path} is a ` +
          `${source.format} checkpoint: choose how to quantize it (e.g. --linear_quantize c4w, ` +
          "-E 8,0)",
      );
    }
    return options;
  }
  const keepLinears = layerLinearTypes(config, source).every(isSymmetricBlockDType);
  const keepEmbedding = isSymmetricBlockDType(source.info(EMBEDDING)!.dtype);
  return {
    ...options,
    ...(options.linearQuantize === undefined && keepLinears ? { linearQuantize: "keep" } : {}),
    ...(options.embeddingQuantize === undefined && keepEmbedding
      ? { embeddingQuantize: "keep" }
      : {}),
  };
}

/**
 * Lines saying what `keep` did: the tensors kept, by type, then every fallback with its reason.
 * Empty when `keep` was not asked for.
 */
export function keepSummary(storage: readonly TensorStorage[]): string[] {
  const kept = new Map<string, number>();
  const fellBack = new Map<string, string[]>();
  for (const { tensor, checkpointType, choice } of storage) {
    if (choice.storage.kind === "kept") {
      kept.set(checkpointType, (kept.get(checkpointType) ?? 0) + 1);
    } else if (choice.fallback !== undefined) {
      const line = `${describeStorage(choice.storage)}: ${choice.fallback}`;
      fellBack.set(line, [...(fellBack.get(line) ?? []), tensor]);
    }
  }
  const lines = [...kept].map(([dtype, count]) =>
    `kept ${count} ${dtype} ${count === 1 ? "tensor" : "tensors"}: ` +
    describeStorage({ kind: "kept", dtype: dtype as SymmetricBlockDType })
  );
  for (const [line, tensors] of fellBack) {
    const named = tensors.slice(0, 2).join(", ") +
      (tensors.length > 2 ? ` and ${tensors.length - 2} more` : "");
    lines.push(`fell back for ${named}: ${line}`);
  }
  return lines;
}
